"""The two deployments of the migration tests: the embedded default a department starts on,
and PostgreSQL + Redis + S3 (moto's server on loopback), each described by a TOML file as an
operator writes them, and ``radcase-pacs migrate`` run as a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.backends import MOTO, REDIS_URL

ROOT = Path(__file__).resolve().parents[3]
ADMIN_PASSWORD = "admin password for the move"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
COMMON: dict[str, Any] = {
    "admin_password": ADMIN_PASSWORD,
    "password_hash_rounds": 4,
    "dimse_port": 0,
    "read_only_check_seconds": 0.2,
}


def write_config(path: Path, **values: Any) -> Path:
    lines = []
    for key, value in {**COMMON, **values}.items():
        shown = f'"{value}"' if isinstance(value, str | Path) else str(value).lower()
        lines.append(f"{key} = {shown}\n")
    path.write_text("".join(lines))
    return path


def embedded_config(folder: Path) -> Path:
    """The embedded default with the cache file a server of several worker processes
    shares."""
    return write_config(
        folder / "source.toml",
        data_dir=folder / "embedded",
        cache_url=f"sqlite:///{folder / 'embedded' / 'cache.sqlite3'}",
    )


def production_config(folder: Path, postgres_url: str, redis_prefix: str, bucket: str) -> Path:
    return write_config(
        folder / "target.toml",
        data_dir=folder / "unused",
        index_url=postgres_url,
        cache_url=f"{REDIS_URL}?prefix={redis_prefix}",
        blob_url=f"s3://{bucket}/archive",
        s3_endpoint_url=MOTO.endpoint,
    )


def environment(config: Path | None = None) -> dict[str, str]:
    """The environment of a server or a migrate process: this one's without its RADCASE_*
    settings (the test suite turns authentication off for itself), the config named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")}
    env.update(AWS)
    if config is not None:
        env["RADCASE_CONFIG"] = str(config)
    return env


def migrate(source: Path, target: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radcase_pacs",
            "migrate",
            "--no-progress",
            "--from",
            str(source),
            "--to",
            str(target),
            *args,
        ],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
