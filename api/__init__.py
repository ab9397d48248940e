"""The HTTP API: the merchant API (/v1) and the provider webhook receiver (/webhooks/{gateway}).

Talks to payments only through Temporal (workflows/) and to everything else through the ports in
`api/ports.py`, which the composition root (workers/) implements.
"""
