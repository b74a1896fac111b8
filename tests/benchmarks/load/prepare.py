"""What a server must hold before the load test, put there through its own API.

* The viewers' population: the throughput benchmark's series (``conformance.bench``: CT of
  100 and 600 slices of 512x512, an MR series, a 50-frame XA), stored by STOW-RS; the same
  generated data goes to every server compared.
* On this server with authentication on: an API key for the viewers, and residents for the
  learner sessions, each of whom sees the test department's published chest CT case
  (``tests.web.department``: three questions, a group, an assignment).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from conformance.bench import figures
from conformance.bench.client import Server
from conformance.bench.run import Population
from tests.web.department import LEARNER, PASSWORD, build, token

LEARNER_PREFIX = "load-resident-"


def populate(server: Server, scale: str) -> int:
    """Stores the benchmark's population of ``scale`` in ``server``; the instance count."""
    population = Population.make(scale)
    for series in population.series:
        figures.stow(server, [series])
    if server.errors.count:
        raise RuntimeError(f"storing the population failed: {server.errors.examples}")
    return sum(len(series.parts) for series in population.series)


@dataclass
class Access:
    """What the users of a server with authentication on sign in with."""

    api_key: str
    learners: list[str]
    password: str = PASSWORD


def prepare_learners(base_url: str, admin_password: str, count: int) -> Access:
    """An API key for the viewers and ``count`` residents (made once: a second run finds
    them), after the test department if the server does not hold it yet."""
    with httpx.Client(base_url=base_url, timeout=120) as client:
        probe = client.post(
            "/api/auth/token",
            data={"grant_type": "password", "username": LEARNER, "password": PASSWORD},
        )
        if probe.status_code != 200:
            build(base_url, admin_password)
        admin = token(client, "admin", admin_password)
        key = client.post("/api/api-keys", json={"name": "load-test"}, headers=admin)
        key.raise_for_status()
        names = [f"{LEARNER_PREFIX}{n:04d}" for n in range(count)]
        existing = {user["username"] for user in client.get("/api/users", headers=admin).json()}
        for name in names:
            if name not in existing:
                made = client.post(
                    "/api/users",
                    json={"username": name, "password": PASSWORD, "role": "learner"},
                    headers=admin,
                )
                made.raise_for_status()
        return Access(api_key=str(key.json()["token"]), learners=names)
