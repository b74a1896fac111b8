"""The administrators' pages: users, API keys, institutions, the audit log and the
server's status."""
