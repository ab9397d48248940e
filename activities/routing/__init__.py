"""Gateway routing: ordered rules (`[payment.routing]`) name candidate gateways, and the first one
whose circuit is closed gets the payment. Health comes from the gateway call outcomes this worker
process counts (activities/metrics.py)."""
