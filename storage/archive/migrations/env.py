"""Alembic environment: migrations run on the connection `storage.archive.migrate.migrate`
hands over (async engines run them through `run_sync`); there is no alembic.ini."""
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
