"""Storage: the tables (``schema``), engines and transactions (``db``), the schema's
Alembic revisions (``migrate``, ``migrations/``), the stored snapshots read back as a panel
(``snapshots``) and one coin through renames (``identity``).
"""
