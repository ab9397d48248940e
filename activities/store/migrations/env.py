"""Alembic environment, run through `activities.store.db.migrate(url)`. It migrates on the
connection it is handed, inside that connection's transaction, so the caller decides locking and
commit. Revisions are plain files in `versions/`, frozen copies of what `tables.py` described when
they were written (tests check that head and `tables.py` agree)."""

from alembic import context

from activities.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through activities.store.db.migrate(url)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
