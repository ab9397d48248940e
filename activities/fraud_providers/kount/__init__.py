"""Kount 360 Orders API (Payments Fraud): an OAuth client-credentials token, then
`POST /commerce/v2/orders?riskInquiry=true` (decision + Omniscore) and `PATCH` with the gateway's
outcome as feedback.

Why not the official `kount-ris-sdk`: it speaks the classic RIS form protocol through `requests`
(blocking; the activities share one event loop), its `SDKConfig.setup` refuses any configuration key
whose SHA-256 differs from a constant shipped in the package (so neither a test nor a fake can
configure it without Kount's real key), and its migration mode fixes the token URL and host. The
REST API is plain JSON over HTTPS, which the shared httpx client covers.
"""
