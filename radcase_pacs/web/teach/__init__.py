"""The educators' pages: clinical studies, cases, the burned-in review, questions, groups,
cohorts and the program's settings."""
