"""Storage: the tables (``schema``), engines and transactions (``db``), the stored
snapshots read back as a panel (``snapshots``) and one coin through renames (``identity``).
"""
