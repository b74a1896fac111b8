"""The application's route table, flattened: through Starlette mounts (and the middleware
wrapping a mounted app, which exposes its app's routes) and FastAPI's included routers.

The access rules and the authorization matrix are checked against this table, and the change
audit matches requests against its leaves, so each must see every route there is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import BaseRoute, Mount


def leaves(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """(full path template, route) of every endpoint route."""
    for route in routes:
        if isinstance(route, Mount):
            yield from leaves(route.routes, prefix + route.path)
        elif hasattr(route, "original_router"):
            # An APIRouter included into a FastAPI app (kept as a router since FastAPI 0.16x).
            included = route.original_router.routes
            yield from leaves(included, prefix + route.include_context.prefix)
        elif getattr(route, "path", None) is not None:
            yield prefix + route.path, route


def route_table(routes: Iterable[Any]) -> list[tuple[str, str]]:
    """(full path template, method) of every endpoint, HEAD and OPTIONS left out (they
    follow GET and CORS)."""
    table = set()
    for path, route in leaves(routes):
        for method in getattr(route, "methods", None) or {"GET"}:
            if method not in ("HEAD", "OPTIONS"):
                table.add((path, method))
    return sorted(table)
