"""multipart/related reading (STOW-RS) and writing (WADO-RS), RFC 2046 §5.1 / RFC 2387."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomweb.multipart import (
    MultipartError,
    MultipartReader,
    Part,
    PartTooLarge,
    TruncatedPart,
    aiter_multipart,
    boundary_from_content_type,
    content_type,
    encode_close,
    encode_part_head,
    iter_multipart,
    new_boundary,
    read_parts,
)

B = "tricky.boundary-Z"
BB = B.encode()

Received = list[tuple[dict[str, str], bytes]]


def _collect(parts: Iterable[Part], into: Received) -> None:
    for part in parts:
        with part:
            assert part.body.tell() == 0
            content = part.body.read()
            assert len(content) == part.size
            assert part.content_type == part.headers.get("content-type")
            into.append((part.headers, content))


def parse(
    body: bytes, chunk_sizes: Iterable[int] | None = None, **options: int
) -> tuple[Received, TruncatedPart | None]:
    """Feed ``body`` in chunks of the given sizes (whole body if None), then finish."""
    reader = MultipartReader(BB, **options)  # type: ignore[arg-type]
    received: Received = []
    position = 0
    for size in chunk_sizes if chunk_sizes is not None else [len(body)]:
        _collect(reader.feed(body[position : position + size]), received)
        position += size
    _collect(reader.feed(body[position:]), received)
    return received, reader.finish()


def byte_by_byte(body: bytes, **options: int) -> tuple[Received, TruncatedPart | None]:
    return parse(body, [1] * len(body), **options)


def make_body(
    parts: Sequence[tuple[Sequence[tuple[str, str]], bytes]],
    *,
    newline: bytes = b"\r\n",
    preamble: bytes = b"",
    epilogue: bytes = b"",
) -> bytes:
    out = [preamble + newline if preamble else b""]
    for index, (headers, content) in enumerate(parts):
        out.append((newline if index else b"") + b"--" + BB + newline)
        out.extend(f"{name}: {value}".encode() + newline for name, value in headers)
        out.append(newline + content)
    out.append(newline + b"--" + BB + b"--" + epilogue)
    return b"".join(out)


DICOM = [("Content-Type", "application/dicom")]


# -- Content-Type -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f'multipart/related; type="application/dicom"; boundary={B}', ("application/dicom", BB)),
        (f'multipart/related; type=application/dicom; boundary="{B}"', ("application/dicom", BB)),
        (f"Multipart/Related;boundary={B};TYPE=Application/DICOM", ("application/dicom", BB)),
        (f'multipart/related; boundary="{B}"', ("", BB)),
        ('multipart/related; boundary="with space"', ("", b"with space")),
        (f"multipart/related; boundary={'x' * 70}", ("", b"x" * 70)),
    ],
)
def test_boundary_and_type_quoted_or_unquoted(header: str, expected: tuple[str, bytes]) -> None:
    assert boundary_from_content_type(header) == expected


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("application/dicom", "expected a multipart/related body"),
        ("multipart/form-data; boundary=abc", "expected a multipart/related body"),
        ('multipart/related; type="application/dicom"', "no boundary parameter"),
        ('multipart/related; boundary=""', "1 to 70 characters"),
        (f"multipart/related; boundary={'x' * 71}", "1 to 70 characters"),
        ('multipart/related; boundary="abc "', "must not end with a space"),
        ("multipart/related; boundary=abc; boundary=def", "duplicate parameter"),
        ("multipart/related; boundary", "invalid Content-Type"),
    ],
)
def test_bad_content_type_raises_multipart_error(header: str, problem: str) -> None:
    with pytest.raises(MultipartError, match=problem):
        boundary_from_content_type(header)


# -- reading --------------------------------------------------------------------


def test_parts_with_headers_in_order() -> None:
    body = make_body(
        [
            ([*DICOM, ("Content-Location", "/a")], b"first"),
            ([("content-type", "application/dicom; transfer-syntax=1.2.840.10008.1.2.1")], b""),
            ([("X-Other", "  padded  ")], b"third\r\n"),
        ]
    )
    parts, truncated = parse(body)
    assert truncated is None
    assert parts == [
        ({"content-type": "application/dicom", "content-location": "/a"}, b"first"),
        ({"content-type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"}, b""),
        ({"x-other": "padded"}, b"third\r\n"),
    ]


def test_part_without_header_block() -> None:
    body = b"--" + BB + b"\r\n\r\nraw bytes\r\n--" + BB + b"--\r\n"
    assert parse(body) == ([({}, b"raw bytes")], None)


def test_empty_part_whose_header_terminator_doubles_as_delimiter_line_break() -> None:
    body = b"--" + BB + b"\r\n\r\n--" + BB + b"\r\n\r\nx\r\n--" + BB + b"--"
    assert parse(body) == ([({}, b""), ({}, b"x")], None)


def test_lf_only_line_endings() -> None:
    body = make_body([(DICOM, b"one"), (DICOM, b"two\n")], newline=b"\n")
    expected = [
        ({"content-type": "application/dicom"}, b"one"),
        ({"content-type": "application/dicom"}, b"two\n"),
    ]
    assert parse(body) == (expected, None)
    assert byte_by_byte(body) == (expected, None)


def test_preamble_and_epilogue_are_ignored() -> None:
    body = make_body(
        [(DICOM, b"payload")],
        preamble=b"This is a preamble mentioning --" + BB + b"x and \r\n--" + BB + b"-y",
        epilogue=b"\r\nepilogue\r\n--" + BB + b"\r\nnot a part\r\n",
    )
    expected = [({"content-type": "application/dicom"}, b"payload")]
    assert parse(body) == (expected, None)
    assert byte_by_byte(body) == (expected, None)


def test_leading_crlf_is_an_empty_preamble_as_dicomweb_client_sends() -> None:
    body = b"\r\n--" + BB + b"\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--" + BB + b"--"
    assert parse(body) == ([({"content-type": "application/dicom"}, b"DICM")], None)


LOOKALIKES = [
    b"x--" + BB + b"\r\n",  # not at a line start
    b"x\r\n--" + BB + b"X\r\n",  # boundary followed by other characters
    b"\r\n--" + BB + b"-x",  # one dash is not a close delimiter
    b"\r\n--" + BB + b" \tx\r\n",  # padding followed by text
    b"\r\n--" + BB + b"\rx",  # CR not followed by LF
    b"\r\n--" + BB[:-1] + b"\r\n",  # prefix of the boundary
    b"\r\n-" + BB + b"\r\n",
    b"\r\r\n--\r\n",
]


@pytest.mark.parametrize("content", LOOKALIKES)
def test_boundary_lookalikes_in_content_are_kept(content: bytes) -> None:
    body = make_body([(DICOM, content), (DICOM, content + content)])
    expected = [({"content-type": "application/dicom"}, c) for c in (content, content + content)]
    assert parse(body) == (expected, None)
    assert byte_by_byte(body) == (expected, None)


def test_transport_padding_after_boundary_is_allowed() -> None:
    body = b"--" + BB + b" \t \r\n\r\none\r\n--" + BB + b"\t\n\r\ntwo\r\n--" + BB + b"--  \r\n"
    assert byte_by_byte(body) == ([({}, b"one"), ({}, b"two")], None)


def test_excessive_transport_padding_is_rejected() -> None:
    body = b"--" + BB + b" " * 5000 + b"\r\n\r\none\r\n--" + BB + b"--"
    with pytest.raises(MultipartError, match="padding"):
        parse(body)


def test_folded_and_repeated_part_headers() -> None:
    body = (
        b"--" + BB + b"\r\nX-Long: first\r\n  second\r\nX-Rep: a\r\nx-rep: b\r\n\r\n"
        b"data\r\n--" + BB + b"--"
    )
    assert parse(body) == ([({"x-long": "first second", "x-rep": "a, b"}, b"data")], None)


@pytest.mark.parametrize(
    "head",
    [
        b"not a header\r\n\r\n",
        b" continuation first\r\n\r\n",
        b"Bad Name: x\r\n\r\n",
        b"DICM\x00\x01",
    ],
)
def test_malformed_part_header_is_an_error(head: bytes) -> None:
    body = b"--" + BB + b"\r\n" + head + b"\r\n--" + BB + b"--"
    with pytest.raises(MultipartError, match="header"):
        parse(body)


def test_header_block_limit() -> None:
    body = make_body([([("X-Big", "v" * 200)], b"data")])
    assert parse(body, max_header_bytes=300)[0] == [({"x-big": "v" * 200}, b"data")]
    with pytest.raises(MultipartError, match="header block exceeds 100 bytes"):
        parse(body, max_header_bytes=100)
    with pytest.raises(MultipartError, match="header block exceeds 100 bytes"):
        byte_by_byte(body, max_header_bytes=100)


def test_header_block_limit_applies_without_any_newline() -> None:
    reader = MultipartReader(BB, max_header_bytes=1000)
    reader.feed(b"--" + BB + b"\r\n")
    with pytest.raises(MultipartError, match="header block"):
        for _ in range(20):
            reader.feed(b"x" * 100)


def test_part_size_limit() -> None:
    body = make_body([(DICOM, b"a" * 100), (DICOM, b"b" * 101)])
    with pytest.raises(PartTooLarge) as info:
        byte_by_byte(body, max_part_bytes=100)
    assert info.value.limit == 100
    assert info.value.size == 101
    assert "exceeds 100 bytes" in str(info.value)
    assert len(parse(body, max_part_bytes=101)[0]) == 2


def test_part_size_limit_is_checked_while_streaming() -> None:
    reader = MultipartReader(BB, max_part_bytes=1000)
    reader.feed(b"--" + BB + b"\r\n\r\n")
    with pytest.raises(PartTooLarge):
        for _ in range(100):
            reader.feed(b"z" * 100)
    with pytest.raises(PartTooLarge):
        reader.finish()


def test_parts_completed_before_an_error_are_returned_whatever_the_chunking() -> None:
    good = make_body([(DICOM, b"good")])[: -len(b"--")]  # ends with the next delimiter
    body = good + b"\r\nbroken header line\r\n\r\n"
    for chunks in ([len(body)], [1] * len(body)):
        reader = MultipartReader(BB)
        received: Received = []
        with pytest.raises(MultipartError, match="malformed header line"):
            position = 0
            for size in chunks:
                _collect(reader.feed(body[position : position + size]), received)
                position += size
            reader.finish()
        assert received == [({"content-type": "application/dicom"}, b"good")]
        with pytest.raises(MultipartError):
            reader.feed(b"more")


def test_body_without_any_delimiter_is_an_error_naming_the_boundary() -> None:
    with pytest.raises(MultipartError, match=r"no delimiter line '--tricky\.boundary-Z'"):
        parse(b"this is not multipart at all")


def test_empty_body_has_no_parts() -> None:
    assert parse(b"") == ([], None)


def test_missing_close_delimiter_after_a_complete_delimiter_line_is_accepted() -> None:
    body = b"--" + BB + b"\r\n\r\none\r\n--" + BB + b"\r\n"
    assert parse(body) == ([({}, b"one")], None)


def test_close_delimiter_without_parts() -> None:
    assert parse(b"--" + BB + b"--\r\n") == ([], None)


def _three_part_body() -> tuple[bytes, list[int], list[int], Received]:
    contents = [b"alpha\r\n--" + BB[:4] + b"\r\n", b"", b"\r\n-\r\n--" + BB + b"Xomega"]
    headers = [{"content-type": "application/dicom"}, {}, {"content-location": "/c"}]
    body = b""
    opened: list[int] = []  # end of the delimiter line opening each part
    completed: list[int] = []  # where the delimiter completing each part is recognised
    for index, (part_headers, content) in enumerate(zip(headers, contents, strict=True)):
        body += (b"\r\n" if index else b"") + b"--" + BB + b"\r\n"
        if index:
            completed.append(len(body))
        opened.append(len(body))
        body += b"".join(f"{k}: {v}\r\n".encode() for k, v in part_headers.items()) + b"\r\n"
        body += content
    body += b"\r\n--" + BB + b"--"
    completed.append(len(body))
    body += b"\r\nepilogue"
    return body, opened, completed, list(zip(headers, contents, strict=True))


def test_truncated_body_cut_at_every_position_never_yields_a_partial_part() -> None:
    body, opened, completed, expected = _three_part_body()
    for cut in range(len(body) + 1):
        prefix = body[:cut]
        if 0 < cut < opened[0]:
            with pytest.raises(MultipartError, match="no delimiter line"):
                parse(prefix)
            continue
        done = sum(1 for end in completed if end <= cut)
        if cut == 0 or done == len(expected) or cut == opened[done]:
            outcome: TruncatedPart | None = None
        else:
            outcome = TruncatedPart(received=cut - opened[done])
        assert parse(prefix) == (expected[:done], outcome), cut
        assert byte_by_byte(prefix) == (expected[:done], outcome), cut


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_chunking_gives_the_same_parts(data: st.DataObject) -> None:
    body, _, _, expected = _three_part_body()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=25)))
    sizes = [b - a for a, b in itertools.pairwise([0, *cuts])]
    assert parse(body, sizes) == (expected, None)


def test_small_spool_threshold_spills_to_disk_transparently(tmp_path: object) -> None:
    payload = random.Random(7).randbytes(200_000)
    body = make_body([(DICOM, payload), (DICOM, payload[:10])])
    parts, truncated = parse(body, [4096] * (len(body) // 4096), spool_bytes=1024)
    assert truncated is None
    assert [content for _, content in parts] == [payload, payload[:10]]


def test_buffer_stays_bounded_by_one_chunk_plus_the_boundary() -> None:
    chunk = 64 * 1024
    body = make_body([(DICOM, random.Random(1).randbytes(3 * 2**20))])
    reader = MultipartReader(BB)
    sizes = []
    for start in range(0, len(body), chunk):
        for part in reader.feed(body[start : start + chunk]):
            part.close()
        sizes.append(reader.buffered_bytes)
    assert max(sizes) <= len(BB) + 3
    assert reader.finish() is None


def test_byte_by_byte_feeding_of_a_large_part_is_linear() -> None:
    payload = bytes(range(256)) * 100
    body = make_body([(DICOM, payload)])
    assert byte_by_byte(body) == ([({"content-type": "application/dicom"}, payload)], None)


def test_feed_or_finish_after_finish_or_close_is_a_usage_error() -> None:
    reader = MultipartReader(BB)
    reader.feed(b"--" + BB + b"--")
    assert reader.finish() is None
    assert reader.finish() is None
    with pytest.raises(RuntimeError):
        reader.feed(b"x")
    closed = MultipartReader(BB)
    closed.close()
    with pytest.raises(RuntimeError):
        closed.finish()


def test_reader_rejects_unusable_boundary() -> None:
    with pytest.raises(MultipartError, match="1 to 70"):
        MultipartReader(b"")


# -- writing ------------------------------------------------------------------------


def test_content_type_quotes_type_and_adds_parameters() -> None:
    header = content_type(B, "application/dicom", transfer_syntax="1.2.840.10008.1.2.1")
    assert header == (
        f'multipart/related; type="application/dicom"; boundary={B}; '
        "transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert boundary_from_content_type(header) == ("application/dicom", BB)
    assert content_type(B, "image/jpeg", **{"transfer-syntax": "*"}).endswith("transfer-syntax=*")
    with pytest.raises(ValueError, match="given twice"):
        content_type(B, "image/jpeg", **{"TYPE": "image/png"})


def test_new_boundary_is_a_fresh_token() -> None:
    first, second = new_boundary(), new_boundary()
    assert first != second
    assert boundary_from_content_type(content_type(first, "application/dicom"))[1] == first.encode()
    assert f"boundary={first}" in content_type(first, "application/dicom")


def test_part_heads_and_close_delimiter() -> None:
    assert encode_part_head(B, {"Content-Type": "image/jpeg"}, first=True) == (
        b"--" + BB + b"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    assert encode_part_head(B, {}) == b"\r\n--" + BB + b"\r\n\r\n"
    assert encode_close(B) == b"\r\n--" + BB + b"--\r\n"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Content-Type": "a\r\nInjected: yes"}, "CR, LF or NUL"),
        ({"Bad Name": "x"}, "invalid header name"),
        ({"X": "\u2603"}, "not Latin-1"),
    ],
)
def test_part_head_rejects_unsafe_headers(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        encode_part_head(B, headers)


@pytest.mark.parametrize("boundary", ["", "x" * 71, "semi;colon", "trailing "])
def test_writer_requires_an_rfc_2046_boundary(boundary: str) -> None:
    with pytest.raises(ValueError):
        encode_close(boundary)


def test_iter_multipart_streams_chunks_without_joining_them() -> None:
    chunk_a, chunk_b = b"A" * 10, b"B" * 10
    pieces = list(iter_multipart(B, [(DICOM_HEADERS, [chunk_a, b"", chunk_b]), ({}, [])]))
    assert pieces[1] is chunk_a and pieces[2] is chunk_b
    assert len(pieces) == 5  # head, a, b, head, close
    assert pieces[0].startswith(b"--" + BB + b"\r\n")
    assert parse(b"".join(pieces)) == (
        [({"content-type": "application/dicom"}, chunk_a + chunk_b), ({}, b"")],
        None,
    )


DICOM_HEADERS = {"Content-Type": "application/dicom"}


def test_iter_multipart_without_parts_is_just_the_close_delimiter() -> None:
    body = b"".join(iter_multipart(B, []))
    assert body == b"--" + BB + b"--\r\n"
    assert parse(body) == ([], None)


_fragments = st.sampled_from([b"\r", b"\n", b"-", b"--", b"\r\n--", BB[:-1], b"x", b" ", b"\t"])
_contents = st.one_of(st.binary(max_size=200), st.lists(_fragments, max_size=30).map(b"".join))
_header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(["X-A", "X-B", "Content-Type"]), _header_values),
            _contents,
        ),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(1, 64), min_size=1, max_size=40),
)
def test_round_trip_writer_to_reader(
    parts: list[tuple[dict[str, str], bytes]], chunk_sizes: list[int]
) -> None:
    body = b"".join(iter_multipart(B, [(h, [c[:7], c[7:]]) for h, c in parts]))
    expected = [({k.lower(): v for k, v in h.items()}, c) for h, c in parts]
    assert parse(body, chunk_sizes) == (expected, None)


# -- async ----------------------------------------------------------------------------


async def _achunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]
    yield b""  # Starlette's request.stream() ends with an empty chunk


async def _aparts(
    parts: list[tuple[dict[str, str], list[bytes]]],
) -> AsyncIterator[tuple[dict[str, str], AsyncIterator[bytes] | list[bytes]]]:
    for index, (headers, chunks) in enumerate(parts):
        yield headers, (_achunks(b"".join(chunks), 3) if index % 2 else chunks)


def test_aiter_multipart_matches_iter_multipart() -> None:
    parts = [(DICOM_HEADERS, [b"one", b"two"]), ({}, [b"three"]), ({"X": "y"}, [])]

    async def run() -> bytes:
        return b"".join([piece async for piece in aiter_multipart(B, _aparts(parts))])

    assert asyncio.run(run()) == b"".join(iter_multipart(B, parts))


def test_read_parts_yields_parts_then_truncation() -> None:
    body = make_body([(DICOM, b"one"), (DICOM, b"two")])
    cut = body[: body.rindex(b"two") + 2]

    async def run(data: bytes) -> list[bytes | TruncatedPart]:
        out: list[bytes | TruncatedPart] = []
        async for item in read_parts(_achunks(data, 5), MultipartReader(BB)):
            if isinstance(item, TruncatedPart):
                out.append(item)
            else:
                with item:
                    out.append(item.body.read())
        return out

    assert asyncio.run(run(body)) == [b"one", b"two"]
    truncated = asyncio.run(run(cut))
    assert truncated[0] == b"one"
    assert isinstance(truncated[1], TruncatedPart) and truncated[1].received > 0


def test_read_parts_closes_pending_parts_when_the_consumer_stops() -> None:
    body = make_body([(DICOM, b"one"), (DICOM, b"two"), (DICOM, b"three")])
    reader = MultipartReader(BB)
    seen: list[Part] = []
    fed: list[Part] = []
    original_feed = reader.feed

    def spy(chunk: bytes) -> list[Part]:
        parts = original_feed(chunk)
        fed.extend(parts)
        return parts

    reader.feed = spy  # type: ignore[method-assign]

    async def run() -> None:
        async with contextlib.aclosing(read_parts(_achunks(body, len(body)), reader)) as items:
            async for item in items:
                assert isinstance(item, Part)
                seen.append(item)
                break

    asyncio.run(run())
    assert len(seen) == 1 and len(fed) == 3
    assert all(part.body.closed for part in fed[1:])
    seen[0].close()
    with pytest.raises(RuntimeError):
        reader.feed(b"x")


# -- interoperability with dicomweb-client ----------------------------------------------


def test_dicomweb_client_stow_body_is_read() -> None:
    web = pytest.importorskip("dicomweb_client.web")
    header = f'multipart/related; type="application/dicom"; boundary={B}'
    contents = [b"DICM" + bytes(range(256)), b"\r\n--" + BB[:-1] + b"\r\n"]
    body = web.DICOMwebClient._encode_multipart_message(contents, header)
    _, boundary = boundary_from_content_type(header)
    assert boundary == BB
    expected = [({"content-type": "application/dicom"}, c) for c in contents]
    assert parse(body) == (expected, None)
    assert byte_by_byte(body) == (expected, None)


def test_wado_body_is_decoded_by_dicomweb_client() -> None:
    web = pytest.importorskip("dicomweb_client.web")
    requests = pytest.importorskip("requests")
    contents = [b"first\r\n", b"", b"--" + BB + b"x"]
    boundary = new_boundary()
    response = requests.Response()
    response.status_code = 200
    response.headers["Content-Type"] = content_type(boundary, "application/octet-stream")
    response._content = b"".join(
        iter_multipart(
            boundary, [({"Content-Type": "application/octet-stream"}, [c]) for c in contents]
        )
    )
    client = web.DICOMwebClient.__new__(web.DICOMwebClient)
    assert list(client._decode_multipart_message(response, stream=False)) == contents
