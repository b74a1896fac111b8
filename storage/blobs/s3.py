"""Blobs as objects in an S3 bucket (AWS or any S3-compatible endpoint): the production store.

* Atomic and durable puts: S3 shows an object only once its upload is complete, and answers
  a PUT only once the object is stored durably. Objects up to ``multipart_threshold`` go up
  in one PUT; larger ones in parts of ``part_size`` (one part in memory at a time), and a
  failed upload is aborted so no parts linger.
* Integrity: every PUT and part carries a SHA-256 checksum that S3 verifies before accepting
  the bytes; whole-object reads ask S3 for the checksum and botocore verifies it.
* Reads: ``stream`` yields the body in chunks as it arrives; ``read_range`` is one ranged GET
  (frames, bulk data).
* Time bounds: connecting takes at most ``connect_timeout`` and each read of the answer at
  most ``read_timeout`` (a frozen endpoint accepts the connection and never answers: only the
  read timeout ends the wait). Throttling (503 SlowDown), 5xx and dropped or timed-out
  connections are tried again with exponential backoff and jitter, ``max_attempts`` times in
  all, and only while a whole attempt still fits in ``budget`` seconds from the first: no
  request waits on S3 longer than its budget. Once S3 has just failed to answer, a request
  that could not end by the deadline its caller opened (:mod:`storage.deadlines`: the time
  it waited for a thread counts) is not started. What did not answer in time is a
  :class:`BackendUnavailable` (HTTP 503 with Retry-After). The retries are ours, not
  botocore's, so that they can see the budget.
* A circuit breaker (:mod:`storage.breaker`): after ``breaker_threshold`` requests in a row
  that S3 did not answer, requests fail at once for ``breaker_cooldown`` seconds, then one
  probes. Requests that need no S3 never wait behind one that does.
* Credentials and region come the standard AWS way (environment, shared config and
  credentials files, instance or container roles), never from a URL. The endpoint of an
  S3-compatible service is given by the caller (setting ``s3_endpoint_url``); path-style
  addressing is then the default, as most such services expect.

A missing object is a :class:`BackendFailure` like in the folder store: the index never points
at a missing blob, so a missing object is a fault, not a 404 for the client.

For the orphan sweep (:mod:`storage.sweep`): an object's time of writing is its
``LastModified``, which S3 sets when the upload began (for an upload in parts, possibly when
it was initiated), so a sweep's grace period must outlast the longest upload as well as the
index commit after it. The remains of uploads in parts that were never completed nor aborted
(a crash mid-upload) are listed by :meth:`S3BlobStore.partial_writes` and aborted by the
sweep once no part has arrived for its grace period; a bucket lifecycle rule
(AbortIncompleteMultipartUpload) does the same on the service's side.

URL: ``s3://bucket/optional/prefix`` (see ``storage.urls``).
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from storage import deadlines
from storage.blobs.base import CHUNK_SIZE, BlobEntry, PartialWrite, Staged
from storage.breaker import CircuitBreaker
from storage.errors import BackendFailure, BackendUnavailable, OutOfResources

T = TypeVar("T")

MiB = 1024 * 1024
MAX_PARTS = 10_000  # S3's limit on the parts of one upload
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
FULL_CODES = frozenset({"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull"})
# Answers that say "not now" rather than "no": tried again within the budget.
BUSY_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
)
BUSY_STATUSES = frozenset({429, 500, 502, 503, 504})


class S3BlobStore:
    local = False

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        session: boto3.session.Session | None = None,
        part_size: int = 16 * MiB,
        multipart_threshold: int = 16 * MiB,
        max_attempts: int = 3,
        addressing_style: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        budget: float = 10.0,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 5.0,
        max_connections: int = 50,
    ) -> None:
        if part_size < 5 * MiB:
            raise ValueError("S3 parts are at least 5 MiB")
        if min(connect_timeout, read_timeout, budget) <= 0 or max_attempts < 1:
            raise ValueError("S3 timeouts and budget are positive, max_attempts at least 1")
        if budget < connect_timeout + read_timeout:
            raise ValueError(
                f"the S3 budget ({budget} s) must hold one whole attempt: connect_timeout + "
                f"read_timeout ({connect_timeout + read_timeout} s)"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.max_attempts = max_attempts
        self.budget = budget
        self._attempt_bound = connect_timeout + read_timeout
        self._session = session
        self._config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_connections,
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
        )
        self.breaker = CircuitBreaker(
            f"S3 bucket {bucket}", threshold=breaker_threshold, cooldown=breaker_cooldown
        )
        self._client: Any = None

    def __repr__(self) -> str:
        return f"S3BlobStore('s3://{self.bucket}/{self.prefix}', endpoint={self.endpoint_url!r})"

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        if self._client is None:
            session = self._session or boto3.session.Session()
            self._client = session.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=self._config
            )
        self.ping()

    def ping(self) -> None:
        """Raise BackendFailure unless the bucket answers (BackendUnavailable when S3 does
        not answer in time or the breaker is open)."""
        try:
            self._call("checking the bucket", lambda: self.client.head_bucket(Bucket=self.bucket))
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) in MISSING_CODES | {"NoSuchBucket"}:
                raise BackendFailure(f"S3 bucket {self.bucket} does not exist") from exc
            raise BackendFailure(f"S3 bucket {self.bucket}: {exc}") from exc

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise BackendFailure("the S3 blob store is not open")
        return self._client

    def _key(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise BackendFailure(f"invalid blob key {key!r}")
        return self.prefix + key

    def _call(self, what: str, request: Callable[[], T]) -> T:
        """One S3 request, tried again while S3 is busy or silent and a whole attempt still
        fits in the budget; BackendUnavailable when it never answered. The client's own
        errors (a missing key, a refusal) pass through: S3 answered them."""
        probe = self.breaker.before()
        outer = deadlines.deadline()
        # S3 just failed to answer: an attempt that could not end by the deadline the caller
        # opened (its wait for a thread counted) is not started at all.
        late = outer is not None and time.monotonic() + self._attempt_bound > outer
        if late and self.breaker.troubled:
            self.breaker.released(probe)
            raise BackendUnavailable(
                f"S3 is not answering, and {what} could not end within the request's "
                "budget (part of it went waiting for a blob thread)",
                retry_after=self.breaker.retry_after(),
            )
        deadline = time.monotonic() + self.budget
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = request()
            except (BotoCoreError, ClientError) as exc:
                if not _unanswered(exc):
                    self.breaker.succeeded()
                    raise
                pause = random.uniform(0, min(1.0, 0.05 * 2**attempt))
                fits = time.monotonic() + pause + self._attempt_bound <= deadline
                if attempt < self.max_attempts and fits:
                    time.sleep(pause)
                    continue
                self.breaker.failed(f"{type(exc).__name__}: {exc}"[:200])
                raise BackendUnavailable(
                    f"S3 did not answer {what} within {self.budget:g} s "
                    f"({attempt} attempt{'s' if attempt > 1 else ''}): {exc}",
                    retry_after=self.breaker.retry_after(),
                ) from exc
            except BaseException:
                self.breaker.released(probe)
                raise
            self.breaker.succeeded()
            return answer

    # -- writes ---------------------------------------------------------------------------

    def put(self, key: str, source: BinaryIO, size: int) -> None:
        name = self._key(key)
        try:
            if size <= self.multipart_threshold:
                body = _read_exactly(source, size, key)
                _check_drained(source, size, key)
                self._call(
                    f"a write of {key}",
                    lambda: self.client.put_object(
                        Bucket=self.bucket, Key=name, Body=body, ChecksumAlgorithm="SHA256"
                    ),
                )
            else:
                self._put_in_parts(name, source, size, key)
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, key) from exc
        except OSError as exc:  # reading the source failed (a dropped upload, a bad disk)
            raise BackendFailure(f"blob {key}: reading its source failed: {exc}") from exc

    def stage(self, key: str, source: BinaryIO, size: int) -> Staged:
        """The object is put at once: S3 acknowledges a PUT only once it is durable, so there
        is nothing to batch. It is visible before :meth:`publish`, which the archive allows
        for: nothing references it before the index commit."""
        self.put(key, source, size)
        return Staged(key)

    def publish(self, staged: Sequence[Staged]) -> list[BackendFailure | None]:
        return [None] * len(staged)

    def discard(self, staged: Sequence[Staged]) -> None:
        """Nothing is held aside: a staged object is already under its key, and only the
        archive knows whether the index references it (an identical copy may be)."""

    def _put_in_parts(self, name: str, source: BinaryIO, size: int, key: str) -> None:
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        upload_id = self._call(
            f"a write of {key}",
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=name, ChecksumAlgorithm="SHA256"
            ),
        )["UploadId"]
        try:
            parts = []
            remaining = size
            number = 1
            while remaining > 0:
                chunk = _read_exactly(source, min(part_size, remaining), key)
                answer = self._call(
                    f"part {number} of {key}",
                    functools.partial(
                        self.client.upload_part,
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ChecksumAlgorithm="SHA256",
                    ),
                )
                part = {"PartNumber": number, "ETag": answer["ETag"]}
                if answer.get("ChecksumSHA256"):
                    part["ChecksumSHA256"] = answer["ChecksumSHA256"]
                parts.append(part)
                remaining -= len(chunk)
                number += 1
            _check_drained(source, size, key)
            self._call(
                f"the end of the write of {key}",
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
            )
        except BaseException:
            # An incomplete upload is invisible; should the abort fail too, a bucket lifecycle
            # rule (AbortIncompleteMultipartUpload) reaps the parts.
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise

    def delete(self, key: str) -> None:
        name = self._key(key)
        try:
            self._call(
                f"the removal of {key}",
                lambda: self.client.delete_object(Bucket=self.bucket, Key=name),
            )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) not in MISSING_CODES:
                raise _failure(exc, key) from exc

    # -- reads ----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        name = self._key(key)

        def read() -> bytes:
            answer = self.client.get_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
            with answer["Body"] as body:
                return bytes(body.read())

        try:
            return self._call(f"a read of {key}", read)
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, key) from exc

    def view(self, key: str) -> bytes | memoryview:
        return self.get(key)

    def prefetch(self, keys: Sequence[str]) -> None:
        """Nothing: each object is fetched by the request that reads it."""

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        name = self._key(key)
        try:
            body = self._call(
                f"a read of {key}",
                lambda: self.client.get_object(
                    Bucket=self.bucket, Key=name, ChecksumMode="ENABLED"
                )["Body"],
            )
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, key) from exc
        try:
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, ClientError) as exc:
            # Each read of the body is bounded by read_timeout; what stalls there is not
            # tried again (the bytes before it may already be on their way to a client).
            if _unanswered(exc):
                self.breaker.failed(f"{type(exc).__name__}: {exc}"[:200])
                raise BackendUnavailable(
                    f"S3 stopped answering in the middle of {key}: {exc}",
                    retry_after=self.breaker.retry_after(),
                ) from exc
            raise _failure(exc, key) from exc
        finally:
            body.close()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            if not self.exists(key):
                raise BackendFailure(f"blob {key} is missing")
            return b""
        name = self._key(key)

        def read() -> bytes:
            answer = self.client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={offset}-{offset + length - 1}"
            )
            with answer["Body"] as body:
                return bytes(body.read())

        try:
            data = self._call(f"a ranged read of {key}", read)
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) == "InvalidRange":
                raise BackendFailure(f"blob {key} is shorter than {offset + length} bytes") from exc
            raise _failure(exc, key) from exc
        if len(data) != length:
            raise BackendFailure(f"blob {key} is shorter than {offset + length} bytes")
        return data

    def exists(self, key: str) -> bool:
        name = self._key(key)
        try:
            self._call(
                f"a look-up of {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=name)
            )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) in MISSING_CODES:
                return False
            raise _failure(exc, key) from exc
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        for entry in self.entries(prefix):
            yield entry.key

    def entries(self, prefix: str = "") -> Iterator[BlobEntry]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield BlobEntry(
                        item["Key"][len(self.prefix) :], int(item["Size"]), item["LastModified"]
                    )
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, prefix or "listing") from exc

    def delete_if_older(self, key: str, cutoff: datetime) -> bool:
        """The object's time is read again just before it is deleted. S3 has no delete on
        condition of the time of writing, so the same key written again in the instant
        between the two requests would still be deleted; the sweep only comes here for keys
        no index row named a moment before, which such a write would have to be."""
        name = self._key(key)
        try:
            head = self._call(
                f"a look-up of {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=name)
            )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) in MISSING_CODES:
                return False
            raise _failure(exc, key) from exc
        if head["LastModified"] >= cutoff:
            return False
        self.delete(key)
        return True

    def partial_writes(self, prefix: str = "") -> Iterator[PartialWrite]:
        """Uploads in parts begun and neither completed nor aborted; each one's time is that
        of its latest part (or its initiation, before any part)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for upload in page.get("Uploads", []):
                    yield self._partial(upload["Key"], upload["UploadId"], upload["Initiated"])
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, prefix or "listing uploads") from exc

    def _partial(self, name: str, upload_id: str, initiated: datetime) -> PartialWrite:
        size, latest = 0, initiated
        paginator = self.client.get_paginator("list_parts")
        with contextlib.suppress(ClientError):  # completed or aborted since it was listed
            for page in paginator.paginate(Bucket=self.bucket, Key=name, UploadId=upload_id):
                for part in page.get("Parts", []):
                    size += int(part["Size"])
                    latest = max(latest, part["LastModified"])
        return PartialWrite(name[len(self.prefix) :], upload_id, size, latest)

    def discard_partial(self, write: PartialWrite) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(write.name), UploadId=write.handle
            )
        except (BotoCoreError, ClientError) as exc:
            if _code(exc) not in MISSING_CODES | {"NoSuchUpload"}:
                raise _failure(exc, write.name) from exc


def _check_drained(source: BinaryIO, size: int, key: str) -> None:
    """Refuse a source longer than announced rather than store a truncated object."""
    if source.read(1):
        raise BackendFailure(f"blob {key}: the source holds more than the {size} bytes announced")


def _read_exactly(source: BinaryIO, size: int, key: str) -> bytes:
    """``size`` bytes from ``source``, however many reads that takes."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = source.read(remaining)
        if not chunk:
            raise BackendFailure(f"blob {key}: the source ended {remaining} bytes early")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _unanswered(exc: Exception) -> bool:
    """S3 did not answer (a timeout, a refused or dropped connection) or answered "not now"
    (throttling, 5xx): worth another attempt, and an outage for the breaker when none helps."""
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return _code(exc) in BUSY_CODES or status in BUSY_STATUSES
    return False


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _failure(exc: Exception, key: str) -> BackendFailure:
    code = _code(exc)
    if code in MISSING_CODES:
        # The index never points at a missing blob, so this is a fault, not a 404.
        return BackendFailure(f"blob {key} is missing")
    if code in FULL_CODES:
        return OutOfResources(f"no space left for blob {key}: {code}")
    return BackendFailure(f"blob {key}: {exc}")
