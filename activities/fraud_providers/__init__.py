"""Fraud screening services behind one port (`base.FraudProvider`): Sift, Signifyd and Kount, each an
httpx adapter, pure request/response transformers, and a fake server that speaks its real API."""
