"""Fixtures of the production backends (a PostgreSQL schema, a Redis prefix, a bucket on
moto's S3 server, a Redis server to stop and restart) for the composition root's tests."""

from tests.backends import (
    postgres_url,
    private_redis,
    redis_key_prefix,
    s3_bucket_name,
    s3_server,
)

__all__ = ["postgres_url", "private_redis", "redis_key_prefix", "s3_bucket_name", "s3_server"]
