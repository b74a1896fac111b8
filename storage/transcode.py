"""Transcoding a stored instance to Explicit VR Little Endian on request, and deciding
beforehand whether it can be.

Only the read path that a client explicitly asks for lands here (PS3.18 §8.7.3.5: a
``transfer-syntax`` the instance is not stored in); the default is to stream stored bytes.
Decompression uses pydicom's pixel decoders (pylibjpeg, pyjpegls, openjpeg, RLE).

A retrieve must know, before its status line, which instances it can deliver in the syntax
it negotiated (PS3.18 §8.7.8.2 selects a syntax per part). Two facts decide it: whether a
decoder for the stored syntax is installed (:func:`can_transcode`, asked at read time, since
decoders come and go with deployments) and whether this instance's own bits decode with it,
which ingest finds out once by decoding the first frame (:func:`first_frame_problem`) and
records as ``decode_problem``. :func:`transcode_problem` combines the two.
"""

from __future__ import annotations

import io
import warnings

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from storage.errors import Unavailable
from storage.frames import swap_bytes
from storage.instance_json import SWAP_WIDTH
from storage.pixels import PixelDescription, can_decode, decode_frame
from storage.records import StoredInstance

EXPLICIT_VR_LITTLE_ENDIAN = str(ExplicitVRLittleEndian)


def can_transcode(stored: str, target: str) -> bool:
    """Whether an instance stored in ``stored`` can be delivered in ``target``: its own syntax
    always; Explicit VR Little Endian from any native syntax, or from a compressed one whose
    decoder is installed. We do not compress on the fly."""
    if target == stored:
        return True
    if target != EXPLICIT_VR_LITTLE_ENDIAN:
        return False
    uid = UID(stored)
    if not uid.is_transfer_syntax:
        return False
    return not needs_decoding(stored) or can_decode(stored)


def needs_decoding(syntax: str) -> bool:
    """Whether converting from ``syntax`` to Explicit VR Little Endian decodes pixel data:
    compressed syntaxes do; native ones (deflated data sets included) are only re-encoded."""
    uid = UID(syntax)
    return uid.is_transfer_syntax and uid.is_compressed and not uid.is_deflated


def transcode_problem(instance: StoredInstance, target: str) -> str | None:
    """Why ``instance`` cannot be delivered in ``target``, or None when it can.

    Its stored syntax always can; otherwise :func:`can_transcode` decides by syntax, and the
    instance's recorded ``decode_problem`` by its bits. Instances stored before that fact was
    recorded have None there and are decided by syntax alone, as they always were.
    """
    stored = instance.transfer_syntax
    if target == stored:
        return None
    if not can_transcode(stored, target):
        name = UID(stored).name or "unknown"
        if target != EXPLICIT_VR_LITTLE_ENDIAN:
            return (
                f"stored as {stored} ({name}); it is sent as stored or as "
                f"{EXPLICIT_VR_LITTLE_ENDIAN}, never compressed on the fly"
            )
        return f"stored as {stored} ({name}), for which no decoder is installed"
    if instance.decode_problem:
        return f"stored as {stored}, whose pixel data does not decode: {instance.decode_problem}"
    return None


def first_frame_problem(syntax: str, frame: bytes, description: PixelDescription) -> str | None:
    """Why the first frame of an instance stored in ``syntax`` does not decode with the
    installed decoder, or None when it does or when there is nothing to try (a native
    syntax, or no decoder installed: that is decided at read time by :func:`can_transcode`).

    Run once at ingest. A decoder that exists for a syntax may still refuse a particular
    instance's bits (a 12-bit JPEG process some codec does not implement, a damaged stream):
    only decoding tells, and one frame is what it costs to know before a retrieve starts."""
    if not needs_decoding(syntax) or not can_decode(syntax):
        return None
    try:
        decode_frame(frame, syntax, description)
    except Unavailable as exc:
        return str(exc)
    return None


def to_explicit_little_endian(data: bytes) -> bytes:
    """Re-encode a PS3.10 file as Explicit VR Little Endian, decompressing pixel data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            for _ in ds.iterall():
                pass  # converts raw elements, giving implicit-VR ones their dictionary VR
            syntax = UID(ds.file_meta.TransferSyntaxUID)
            if syntax.is_compressed and not syntax.is_deflated:
                # A transfer syntax change is not a new instance: the SOP Instance UID stays.
                ds.decompress(generate_instance_uid=False)
            elif not syntax.is_little_endian:
                _swap_to_little_endian(ds)
                ds.set_original_encoding(False, True, ds.original_character_set)
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
        except Exception as exc:  # decoders raise anything from ValueError to RuntimeError
            raise Unavailable(
                f"the instance cannot be converted to Explicit VR Little Endian: {exc}"
            ) from exc
    return out.getvalue()


def _swap_to_little_endian(ds: Dataset) -> None:
    """Big Endian (PS3.5 §A.3, retired) to Little Endian: values of word-oriented binary VRs
    change byte order; everything else pydicom re-encodes itself. Pixel data words are as
    wide as Bits Allocated (PS3.5 §8.1.1)."""
    bits = int(ds.get("BitsAllocated", 0) or 0)
    for element in ds.iterall():
        width = SWAP_WIDTH.get(element.VR or "")
        if element.tag == 0x7FE00010 and bits in (16, 32, 64):
            width = bits // 8
        if width and isinstance(element.value, bytes | bytearray):
            element.value = swap_bytes(bytes(element.value), width)
