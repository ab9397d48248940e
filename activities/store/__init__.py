"""The durable record of payments: SQLAlchemy tables, alembic migrations and the repository.

The workflow is the source of truth; these tables are its projection (for listing, reconciliation,
webhook mapping and fraud velocity), plus the order ledger, the webhook inbox and API rate limits.
"""
