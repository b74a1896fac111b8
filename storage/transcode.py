"""Transcoding a stored instance to Explicit VR Little Endian on request.

Only the read path that a client explicitly asks for lands here (PS3.18 §8.7.3.5: a
``transfer-syntax`` the instance is not stored in); the default is to stream stored bytes.
Decompression uses pydicom's pixel decoders (pylibjpeg, pyjpegls, openjpeg, RLE).
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
from storage.pixels import can_decode

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
    return not uid.is_compressed or uid.is_deflated or can_decode(stored)


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
