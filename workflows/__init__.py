"""Payment workflows and their contracts.

Nothing in this package performs I/O: it is imported inside Temporal's workflow sandbox, and by the
API and the activities, which talk to each other only through the pydantic models defined here.
The one exception is `client.py`, the client side of `PaymentWorkflow`: no workflow imports it.
"""
