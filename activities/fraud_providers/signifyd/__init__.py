"""Signifyd API v3: the pre-auth checkout decision (ACCEPT / REJECT / HOLD), then the sale
transaction and chargebacks as feedback."""
