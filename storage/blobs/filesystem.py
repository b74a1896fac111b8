"""Blobs as files in a folder: the embedded default.

Writes go to a temporary file in the target folder (``.NAME.RANDOM.tmp``) and are renamed
into place (atomic on POSIX), so a crash mid-write leaves at most a stray ``.tmp`` file, never
a half object under a real key. Listings skip those files; the orphan sweep
(:mod:`storage.sweep`) removes the ones no write has touched for its grace period. Keys map
to paths one to one; a key that would escape the root is refused.

An object's time of writing is its file's modification time: the rename keeps the time of
the last byte written, and writing the same key again (the same instance sent again) renews
it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from storage.blobs.base import CHUNK_SIZE, BlobEntry, PartialWrite
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
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
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
        for key, _ in self._files(prefix):
            if not key.endswith(TMP_SUFFIX):
                yield key

    def entries(self, prefix: str = "") -> Iterator[BlobEntry]:
        for key, item in self._files(prefix):
            if key.endswith(TMP_SUFFIX):
                continue
            try:
                info = item.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted since the folder was read
                continue
            except OSError as exc:
                raise _failure(exc, key) from exc
            yield BlobEntry(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def delete_if_older(self, key: str, cutoff: datetime) -> bool:
        """The file is first renamed aside, so what is judged is exactly what is removed: a
        write that lands meanwhile creates a new file under the key and is untouched, and a
        file found written again before the rename is put back."""
        path = self._path(key)
        aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _failure(exc, key) from exc
        try:
            written = datetime.fromtimestamp(aside.stat().st_mtime, UTC)
            if written < cutoff:
                return True
            # Written once more meanwhile, the key holds the same content again: keep that.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            return False
        except OSError as exc:
            raise _failure(exc, key) from exc
        finally:
            aside.unlink(missing_ok=True)

    def partial_writes(self, prefix: str = "") -> Iterator[PartialWrite]:
        for key, item in self._files(prefix):
            if not key.endswith(TMP_SUFFIX):
                continue
            try:
                info = item.stat(follow_symlinks=False)
            except FileNotFoundError:  # the write completed (renamed) or was discarded
                continue
            except OSError as exc:
                raise _failure(exc, key) from exc
            started = datetime.fromtimestamp(info.st_mtime, UTC)
            yield PartialWrite(_written_key(key), key, info.st_size, started)

    def discard_partial(self, write: PartialWrite) -> None:
        if not write.handle.endswith(TMP_SUFFIX):
            raise BackendFailure(f"{write.handle!r} is not the remains of a write")
        try:
            self._path(write.handle).unlink(missing_ok=True)
        except OSError as exc:
            raise _failure(exc, write.handle) from exc

    def _files(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """Every file under ``prefix`` and its key, depth first with one open folder per
        level: however many entries a folder holds, they are never all in memory."""
        folder, _, _ = prefix.rpartition("/")
        yield from self._scan(self._path(folder) if folder else self.root, folder, prefix)

    def _scan(self, path: Path, base: str, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        try:
            with os.scandir(path) as items:
                for item in items:
                    key = f"{base}/{item.name}" if base else item.name
                    if item.is_dir(follow_symlinks=False):
                        if key.startswith(prefix) or prefix.startswith(f"{key}/"):
                            yield from self._scan(Path(item.path), key, prefix)
                    elif key.startswith(prefix):
                        yield key, item
        except FileNotFoundError:  # no such prefix, or removed while listing
            return
        except OSError as exc:
            raise _failure(exc, base or "listing") from exc


def _written_key(temporary: str) -> str:
    """The key a temporary file ``FOLDER/.NAME.RANDOM.tmp`` was being written for; the file's
    own path when it is not named that way."""
    folder, _, name = temporary.rpartition("/")
    target = name[1 : -len(TMP_SUFFIX)].rpartition(".")[0]
    if not name.startswith(".") or not target:
        return temporary
    return f"{folder}/{target}" if folder else target


def _failure(exc: OSError, key: str) -> Exception:
    if isinstance(exc, FileNotFoundError):
        # The index never points at a missing blob, so this is a fault, not a 404.
        return BackendFailure(f"blob {key} is missing")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return OutOfResources(f"no space left for blob {key}: {exc.strerror}")
    return BackendFailure(f"blob {key}: {exc.strerror or exc}")
