"""A Redis server the storage tests can stop and restart, a PostgreSQL schema of a test's own
and moto's S3 server."""

from tests.backends import postgres_url, private_redis, s3_server

__all__ = ["postgres_url", "private_redis", "s3_server"]
