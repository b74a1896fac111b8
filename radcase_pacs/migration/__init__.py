"""``radcase-pacs migrate``: a whole deployment carried into another (typically the embedded
default into PostgreSQL, Redis and S3) while it keeps serving, then a switch of seconds.

One concern per module:

* :mod:`~radcase_pacs.migration.tables`: every table and how it is carried (a test holds it
  to the tables a deployment has);
* :mod:`~radcase_pacs.migration.catalog`: what a database holds, per dialect;
* :mod:`~radcase_pacs.migration.rows`: a table copied and compared row by row;
* :mod:`~radcase_pacs.migration.archives`: an archive copied instance by instance;
* :mod:`~radcase_pacs.migration.held`, :mod:`~radcase_pacs.migration.keys`: held-back
  teaching copies, and the keys (login sessions are rows of ``user_sessions``, carried with
  the other tables, so tokens and cookies go on working);
* :mod:`~radcase_pacs.migration.passes`: one pass over all of it;
* :mod:`~radcase_pacs.migration.verify`: the comparison of everything;
* :mod:`~radcase_pacs.migration.follow`, :mod:`~radcase_pacs.migration.switch`: passes while
  the source serves, and the read-only moment;
* :mod:`~radcase_pacs.migration.command`: the command line.
"""
