"""Payment workflows and their contracts.

Nothing in this package performs I/O: it is imported inside Temporal's workflow sandbox, and by the
API and the activities, which talk to each other only through the pydantic models defined here.
"""
