"""Blobs as files in a folder: the embedded default.

Writes go to a temporary file in the target folder and are renamed into place (atomic on
POSIX), so a crash mid-write leaves at most a stray ``.tmp`` file, never a half object under
a real key. Keys map to paths one to one; a key that would escape the root is refused.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.blobs.base import CHUNK_SIZE
from storage.errors import BackendFailure, OutOfResources

TMP_SUFFIX = ".tmp"


class FilesystemBlobStore:
    local = True

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        pass

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise BackendFailure(f"invalid blob key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=TMP_SUFFIX)
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK_SIZE)
                    if self.fsync:
                        out.flush()
                        os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise _failure(exc, key) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise _failure(exc, key) from exc

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except OSError as exc:
            raise _failure(exc, key) from exc
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as exc:
            raise _failure(exc, key) from exc
        if len(data) != length:
            raise BackendFailure(f"blob {key} is shorter than {offset + length} bytes")
        return data

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _failure(exc, key) from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.endswith(TMP_SUFFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key


def _failure(exc: OSError, key: str) -> Exception:
    if isinstance(exc, FileNotFoundError):
        # The index never points at a missing blob, so this is a fault, not a 404.
        return BackendFailure(f"blob {key} is missing")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return OutOfResources(f"no space left for blob {key}: {exc.strerror}")
    return BackendFailure(f"blob {key}: {exc.strerror or exc}")
