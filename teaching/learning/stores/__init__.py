"""Persistence of the learning tables, one store per aggregate, all over the one database
:class:`teaching.learning.schema.LearningTables` opens and migrates.

One SQL text for SQLite and PostgreSQL (``?`` placeholders, ``RETURNING``); every statement is
scoped by tenant. Times are :mod:`storage.database.timestamps` text, so comparing the text
compares the times.
"""
