"""A deliberately independent multipart/related splitter for tests: written from RFC 2046
§5.1 without our reader, so a bug in one cannot hide a bug in the other."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx


@dataclass
class SplitPart:
    headers: dict[str, str]
    body: bytes


def boundary_of(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    assert match, f"no boundary in {content_type!r}"
    return match.group(1)


def split_multipart(response: httpx.Response) -> list[SplitPart]:
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    delimiter = b"--" + boundary_of(content_type).encode()
    body = response.content
    assert body.startswith(delimiter), body[:80]
    sections = body.split(b"\r\n" + delimiter)
    sections[0] = sections[0][len(delimiter) :]
    parts = []
    for section in sections:
        if section.startswith(b"--"):
            break
        head, _, content = section.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            if b":" in line:
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append(SplitPart(headers, content))
    return parts
