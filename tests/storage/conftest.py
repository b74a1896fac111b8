"""A Redis server the storage tests can stop and restart."""

from tests.backends import private_redis

__all__ = ["private_redis"]
