"""Relational databases (SQLite, PostgreSQL) behind one interface, so every component that
keeps tables (the index, teaching cases, users, the audit log) shares the connection,
transaction and migration code instead of each writing its own."""
