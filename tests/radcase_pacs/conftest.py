"""Fixtures of the production backends (a PostgreSQL schema, a Redis prefix, a bucket on
moto's S3 server; Redis, moto and PostgreSQL servers of a test's own, to stop, freeze and
restart) for the composition root's tests."""

from tests.backends import (
    freezable_redis,
    postgres_url,
    private_moto,
    private_postgres,
    private_redis,
    redis_key_prefix,
    s3_bucket_name,
    s3_server,
)

__all__ = [
    "freezable_redis",
    "postgres_url",
    "private_moto",
    "private_postgres",
    "private_redis",
    "redis_key_prefix",
    "s3_bucket_name",
    "s3_server",
]
