"""Server settings, resolved in one order: defaults < TOML file < ``RADCASE_*`` environment
< command-line flags.

The environment names are a public interface (deployment scripts and conformance runs set
them); each key is documented in ``config/radcase.toml``. The TOML file is the one given with
``--config``, else ``RADCASE_CONFIG``, else ``config/radcase.toml`` if it exists.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

from radcase_pacs.dimse.peers import Peer, parse_ae_titles, parse_peers
from storage.namespaces import namespaced_url
from storage.tenants import is_valid_tenant
from storage.urls import with_defaults, with_durability

DEFAULT_CONFIG = Path("config/radcase.toml")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADCASE_", extra="forbid")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to")
    http_port: int = Field(8080, ge=0, le=65535)
    dimse_port: int = Field(11112, ge=0, le=65535, description="0 turns DIMSE off")
    ae_title: str = Field("RADCASE", min_length=1, max_length=16)
    data_dir: Path = Path("./data")
    index_url: str | None = None
    index_read_url: str | None = Field(
        None,
        description="A PostgreSQL streaming replica of index_url's server: searches (QIDO-RS, "
        "C-FIND) and the teaching analytics read from it once it has replayed the tenant's "
        "latest write; None: every read on the primary",
    )
    index_read_max_lag_seconds: float = Field(
        5.0,
        gt=0,
        description="Lag beyond which the replica serves no read (the primary answers)",
    )
    blob_url: str | None = None
    cache_url: str = "memory://"
    s3_endpoint_url: str | None = Field(
        None,
        description="Endpoint of an S3-compatible service for s3:// blob URLs; None: AWS",
    )
    durable_writes: bool = Field(
        True,
        description="false: the embedded stores skip their syncs (fsync, SQLite "
        "synchronous=FULL); an acknowledged instance then survives a process crash, not a "
        "power cut",
    )
    tenant: str = "default"
    deid_secret: str | None = Field(
        None,
        min_length=16,
        description="Key of the teaching copies' UIDs and date shifts; default: made once "
        "and kept in the teaching database",
    )
    auth: Literal["on", "off"] = Field(
        "on", description="off: no login, everyone an admin (a local demo; loopback only)"
    )
    auth_secret: str | None = Field(
        None, min_length=32, description="JWT signing key; default: made once, kept in the DB"
    )
    admin_password: str | None = Field(
        None, description="Password of the admin made on first start (generated if unset)"
    )
    password_hash_rounds: int = Field(
        12, ge=4, le=16, description="bcrypt cost: 2^N rounds per password check"
    )
    access_token_seconds: int = Field(900, ge=30, le=86400)
    refresh_token_seconds: int = Field(43200, ge=60, le=30 * 86400)
    login_max_failures: int = Field(10, ge=1)
    login_window_seconds: int = Field(900, ge=1)
    dimse_ae_tenants: str = Field(
        "", description="Calling AE title to institution, AET=tenant comma-separated"
    )
    teaching_index_url: str | None = None
    teaching_blob_url: str | None = None
    teaching_cache_url: str | None = None
    base_url: str | None = None
    cors_origins: str = "*"
    trusted_proxies: str = Field(
        "",
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed "
        "(uvicorn's forwarded_allow_ips, comma-separated); empty: none. Behind a proxy that "
        "terminates TLS, list it so that the session cookie is marked Secure",
    )
    viewer_url: str | None = Field(
        None,
        description="A department's OHIF (or other) viewer for the feedback page's \"Open in "
        'OHIF" link: a URL with {study} where the teaching study UID goes; None: no link',
    )
    qido_max_results: int = Field(1000, ge=1)
    max_request_bytes: int = Field(4 * 1024**3, ge=1)
    max_part_bytes: int = Field(2 * 1024**3, ge=1)
    log_level: str = "info"
    http_access_log: bool = Field(
        False,
        description="A line per HTTP request on the log (the audit log records every clinical "
        "request either way)",
    )
    dimse_peers: str = Field(
        "", description="Remote AEs for C-MOVE: AET=host:port, comma-separated"
    )
    dimse_allowed_aets: str = Field(
        "", description="Calling AE titles allowed to associate, comma-separated; empty: any"
    )
    dimse_max_associations: int = Field(16, ge=1, le=1000)
    dimse_max_associations_per_address: int = Field(
        8,
        ge=1,
        le=1000,
        description="Associations one calling address may hold at once (at most "
        "dimse_max_associations)",
    )
    dimse_max_pdu: int = Field(262144, ge=0, description="0: no limit (PS3.8 §9.3.1)")
    dimse_acse_timeout: float = Field(30.0, gt=0)
    dimse_artim_timeout: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Seconds from a connection to its complete A-ASSOCIATE-RQ (PS3.8 §9.1.5 "
        "ARTIM); a connection that sends none is closed",
    )
    dimse_timeout: float = Field(60.0, gt=0)
    dimse_network_timeout: float = Field(60.0, gt=0)
    dimse_connect_timeout: float = Field(10.0, gt=0)
    sweep_grace_seconds: float = Field(
        3600.0,
        ge=60,
        description="Age below which an unreferenced blob is never swept: it may be mid-ingest",
    )
    sweep_interval_seconds: float = Field(
        21600.0, ge=0, description="Seconds between orphan sweeps of `serve`; 0 turns them off"
    )
    s3_connect_timeout: float = Field(2.0, gt=0, description="Seconds to connect to S3")
    s3_read_timeout: float = Field(
        5.0, gt=0, description="Seconds S3 may take over each read of an answer"
    )
    s3_max_attempts: int = Field(3, ge=1, le=10, description="Tries of one S3 request in all")
    s3_budget: float = Field(
        10.0,
        gt=0,
        description="Seconds one S3 request may take with its retries; then 503 Retry-After",
    )
    postgres_connect_timeout: float = Field(
        5.0, ge=2, description="Seconds to connect to PostgreSQL (libpq's least is 2)"
    )
    postgres_pool_timeout: float = Field(
        5.0, gt=0, description="Seconds a request waits for a pooled PostgreSQL connection"
    )
    postgres_statement_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a statement may run; a server silent a second longer is cut off",
    )
    redis_timeout: float = Field(0.5, gt=0, description="Seconds Redis may take per command")
    redis_connect_timeout: float = Field(0.5, gt=0, description="Seconds to connect to Redis")
    breaker_threshold: int = Field(
        3, ge=1, description="Outages in a row after which S3 or PostgreSQL calls fail at once"
    )
    breaker_cooldown: float = Field(
        5.0, gt=0, description="Seconds calls fail at once before one probes the backend again"
    )
    blob_threads: int = Field(
        16,
        ge=1,
        le=1000,
        description="Worker threads HTTP requests may hold for blob reads and writes at once; "
        "the others stay free for requests that need no blob",
    )
    health_timeout: float = Field(
        0.5, gt=0, description="Seconds /healthz waits for each backend's answer"
    )
    shutdown_drain_seconds: float = Field(
        5.0,
        ge=0,
        description="After SIGTERM, seconds `serve` goes on serving while /healthz answers 503 "
        "draining, before its listeners close, so a load balancer stops sending it work",
    )
    shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        description="Once the listeners are closed, seconds the requests in flight and the open "
        "DIMSE associations have to finish before they are cut",
    )
    read_only_check_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How long each process trusts the last read of the read-only flag that a "
        "migration's switch sets; the switch waits this long before its final copy",
    )

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        """PS3.5 Table 6.2-1 (AE): 16 characters, no backslash or control characters."""
        if "\\" in value or any(ord(c) < 32 for c in value) or not value.strip():
            raise ValueError("an AE title is 1-16 printable characters without backslash")
        return value.strip()

    @field_validator("dimse_peers", mode="before")
    @classmethod
    def _peers(cls, value: Any) -> Any:
        """The TOML file may give peers as a table (``[dimse_peers]`` ``PACS1 = "host:104"``);
        it means the same as the text form the environment variable uses."""
        if isinstance(value, dict):
            value = ",".join(f"{title}={address}" for title, address in value.items())
        parse_peers(str(value))
        return value

    @field_validator("dimse_allowed_aets")
    @classmethod
    def _allowed(cls, value: str) -> str:
        parse_ae_titles(value)
        return value

    @model_validator(mode="after")
    def _auth_off_on_loopback_only(self) -> Settings:
        """Without authentication anyone who reaches the port reads patients' data: allowed
        only when nothing but this machine can reach it."""
        if self.auth == "off" and not is_loopback(self.host):
            raise ValueError(
                f"auth = off is refused while the server binds to {self.host}; "
                "bind to 127.0.0.1 (or ::1) for a local demo"
            )
        return self

    @field_validator("index_read_url")
    @classmethod
    def _index_read_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme.lower() not in ("postgresql", "postgres"):
            raise ValueError("index_read_url names a PostgreSQL server (postgresql://...)")
        return value

    @model_validator(mode="after")
    def _replica_of_postgres(self) -> Settings:
        """A streaming replica copies a PostgreSQL server: the index must be on one, and the
        replica is read in the index's schema."""
        if self.index_read_url is None:
            return self
        if urlsplit(self.resolved_index_url).scheme.lower() not in ("postgresql", "postgres"):
            raise ValueError("index_read_url needs index_url on PostgreSQL (postgresql://...)")
        schema = _query_value(self.resolved_index_url, "schema")
        if _query_value(self.index_read_url, "schema") not in (None, schema):
            raise ValueError(
                "index_read_url: leave out schema, the replica is read in index_url's schema"
            )
        return self

    @model_validator(mode="after")
    def _s3_budget_holds_an_attempt(self) -> Settings:
        """A budget shorter than one attempt could not be kept (see storage.blobs.s3)."""
        if self.s3_budget < self.s3_connect_timeout + self.s3_read_timeout:
            raise ValueError(
                "s3_budget must be at least s3_connect_timeout + s3_read_timeout "
                f"({self.s3_connect_timeout + self.s3_read_timeout:g} s)"
            )
        return self

    @field_validator("viewer_url")
    @classmethod
    def _viewer_url(cls, value: str | None) -> str | None:
        """An http(s) address with a ``{study}`` slot: the link must open the case's study."""
        if value is None:
            return None
        if not value.startswith(("https://", "http://", "/")) or "{study}" not in value:
            raise ValueError(
                "viewer_url is an http(s) URL (or a path of this site) with {study} where "
                "the study UID goes"
            )
        return value

    def viewer_link(self, study_uid: str) -> str | None:
        """The configured viewer's address for ``study_uid``; None when none is set."""
        if self.viewer_url is None:
            return None
        return self.viewer_url.replace("{study}", quote(study_uid, safe=""))

    @field_validator("dimse_ae_tenants")
    @classmethod
    def _ae_tenants(cls, value: str) -> str:
        parse_ae_tenants(value)
        return value

    @property
    def ae_tenants(self) -> dict[str, str]:
        return parse_ae_tenants(self.dimse_ae_tenants)

    @property
    def peers(self) -> dict[str, Peer]:
        return parse_peers(self.dimse_peers)

    @property
    def allowed_aets(self) -> frozenset[str]:
        return parse_ae_titles(self.dimse_allowed_aets)

    @property
    def resolved_index_url(self) -> str:
        url = self.index_url or f"sqlite:///{self.data_dir.resolve() / 'index.sqlite3'}"
        return self.bounded(with_durability(url, self.durable_writes))

    @property
    def resolved_index_read_url(self) -> str | None:
        """The replica's URL in the index's schema (None: no replica), bounded like the
        primary's but with short connection waits (:data:`REPLICA_WAITS`): a replica that
        does not answer sends its reads to the primary, so waiting longer only delays them."""
        if self.index_read_url is None:
            return None
        url = self.index_read_url
        schema = _query_value(self.resolved_index_url, "schema")
        if schema is not None and _query_value(url, "schema") is None:
            separator = "&" if "?" in url else "?"
            url = f"{url}{separator}{urlencode({'schema': schema})}"
        return self.bounded(with_defaults(url, REPLICA_WAITS))

    @property
    def resolved_teaching_index_read_url(self) -> str | None:
        """The replica's URL in the teaching database's schema, when the teaching database is
        the index's own namespace (None otherwise: its reads stay on its own server)."""
        read_url = self.resolved_index_read_url
        if read_url is None or self.teaching_index_url is not None:
            return None
        return namespaced_url(read_url, "teaching")

    @property
    def resolved_blob_url(self) -> str:
        url = self.blob_url or f"file:///{self.data_dir.resolve() / 'blobs'}"
        return self.bounded(with_durability(url, self.durable_writes))

    @property
    def resolved_cache_url(self) -> str:
        return self.bounded(self.cache_url)

    @property
    def resolved_teaching_index_url(self) -> str:
        url = self.teaching_index_url or namespaced_url(self.resolved_index_url, "teaching")
        return self.bounded(with_durability(url, self.durable_writes))

    @property
    def resolved_teaching_blob_url(self) -> str:
        url = self.teaching_blob_url or namespaced_url(self.resolved_blob_url, "teaching")
        return self.bounded(with_durability(url, self.durable_writes))

    @property
    def resolved_teaching_cache_url(self) -> str:
        return self.bounded(
            self.teaching_cache_url or namespaced_url(self.resolved_cache_url, "teaching")
        )

    def bounded(self, url: str) -> str:
        """``url`` with the configured time bounds of its backend where it sets none itself,
        so every component that opens a store (the index and the audit log, users, cases and
        learning beside it, the session cache) is bounded alike (see storage.urls)."""
        if urlsplit(url).scheme.lower() not in ("postgresql", "postgres", "s3", "redis", "rediss"):
            return url
        return with_defaults(url, self.backend_bounds(urlsplit(url).scheme.lower()))

    def backend_bounds(self, scheme: str) -> dict[str, float | int]:
        """The time bounds of the backend a URL scheme names, by URL parameter."""
        breaker = {
            "breaker_threshold": self.breaker_threshold,
            "breaker_cooldown": self.breaker_cooldown,
        }
        if scheme in ("postgresql", "postgres"):
            return {
                "connect_timeout": self.postgres_connect_timeout,
                "pool_timeout": self.postgres_pool_timeout,
                "statement_timeout": self.postgres_statement_timeout,
                **breaker,
            }
        if scheme == "s3":
            return {
                "connect_timeout": self.s3_connect_timeout,
                "read_timeout": self.s3_read_timeout,
                "max_attempts": self.s3_max_attempts,
                "budget": self.s3_budget,
                **breaker,
            }
        return {
            "socket_timeout": self.redis_timeout,
            "socket_connect_timeout": self.redis_connect_timeout,
        }

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.cors_origins.split(",") if o.strip())


REPLICA_WAITS: dict[str, float | int] = {"connect_timeout": 2, "pool_timeout": 1}
"""A replica's connection waits: libpq's shortest connect timeout, a second for the pool."""


def _query_value(url: str, name: str) -> str | None:
    values = [v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k == name]
    return values[-1] if values and values[-1] else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_ae_tenants(text: str) -> dict[str, str]:
    """``CT1=hospital-a,PACS2=hospital-b``: which institution a calling AE stores for."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        title, sep, tenant = (p.strip() for p in item.partition("="))
        if not sep or not title or len(title) > 16 or not is_valid_tenant(tenant):
            raise ValueError(f"dimse_ae_tenants: {item!r} is not AET=tenant")
        mapping[title] = tenant
    return mapping


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    unknown = set(data) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return data


def config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    from_env = os.environ.get("RADCASE_CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from every source; ``overrides`` are the CLI flags (None values ignored)."""
    path = config_path(config)
    file_values = read_toml(path) if path is not None else {}
    flags = {k: v for k, v in overrides.items() if v is not None}

    class _Resolved(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: Any,
            env_settings: Any,
            dotenv_settings: Any,
            file_secret_settings: Any,
        ) -> tuple[Any, ...]:
            return init_settings, env_settings, InitSettingsSource(settings_cls, file_values)

    return _Resolved(**flags)


def file_settings(path: Path) -> Settings:
    """Settings from one file and the defaults only. ``migrate`` reads two deployments at
    once, and ``RADCASE_*`` variables meant for the server would otherwise apply to both."""
    values = read_toml(path)

    class _FileOnly(Settings):
        @classmethod
        def settings_customise_sources(  # type: ignore[override]
            cls, settings_cls: type[BaseSettings], init_settings: Any, **sources: Any
        ) -> tuple[Any, ...]:
            return (init_settings,)

    return _FileOnly(**values)
