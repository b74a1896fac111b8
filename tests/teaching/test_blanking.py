"""Rectangular pixel blanking: black inside, every other pixel exactly as decoded before."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from teaching.deid import Region, blank_regions, deidentify
from tests.factories import make_instance

SECRET = b"blanking-test-secret-0123456789ab"


def _read(name: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(get_testdata_file(name))


def _frames(ds: Dataset) -> np.ndarray:
    """Decoded pixels as (frames, rows, columns, samples), with no colour conversion."""
    array = pydicom.pixels.pixel_array(ds, raw=True)
    frames = int(ds.get("NumberOfFrames") or 1)
    return np.asarray(array).reshape(frames, int(ds.Rows), int(ds.Columns), -1)


def _mask(shape: tuple[int, ...], regions: list[Region]) -> np.ndarray:
    mask = np.zeros(shape[:3], dtype=bool)
    for r in regions:
        frames = range(shape[0]) if r.frame is None else [r.frame - 1]
        for f in frames:
            mask[f, r.y : r.y + r.height, r.x : r.x + r.width] = True
    return mask


def _black(ds: Dataset) -> np.ndarray:
    """Per sample: the largest value for MONOCHROME1, (0, half, half) for YBR, else the least."""
    bits = int(ds.BitsStored)
    signed = int(ds.PixelRepresentation) == 1
    samples = int(ds.SamplesPerPixel)
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "MONOCHROME1":
        value = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    elif photometric.startswith("YBR"):
        return np.array([0, 1 << (bits - 1), 1 << (bits - 1)])
    else:
        value = -(1 << (bits - 1)) if signed else 0
    return np.array([value] * samples)


def _check(original: Dataset, regions: list[Region]) -> Dataset:
    before = _frames(original)
    pixel_bytes = original.PixelData
    result = blank_regions(original, regions)
    blanked = result.dataset
    after = _frames(blanked)
    assert after.shape == before.shape
    mask = _mask(before.shape, regions)
    assert np.array_equal(after[~mask], before[~mask]), "a pixel outside the regions changed"
    assert np.all(after[mask] == _black(blanked))
    assert blanked.BurnedInAnnotation == "NO"
    assert original.PixelData == pixel_bytes, "the caller's dataset was changed"
    # and it survives being written and read back
    buffer = io.BytesIO()
    blanked.save_as(buffer, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert np.array_equal(_frames(back), after)
    return blanked


def test_native_pixels_are_edited_in_place() -> None:
    original = _read("MR_small.dcm")
    blanked = _check(original, [Region(x=10, y=20, width=30, height=15)])
    assert blanked.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert len(blanked.PixelData) == len(original.PixelData)


def test_one_frame_or_every_frame() -> None:
    ds = make_instance(rows=16, columns=16, frames=3)
    blanked = _check(ds, [Region(2, 3, 4, 5, frame=2), Region(0, 0, 2, 2)])
    frames, before = _frames(blanked), _frames(ds)
    assert np.all(frames[1, 3:8, 2:6] == 0)
    assert np.array_equal(frames[0, 3:8, 2:6], before[0, 3:8, 2:6])
    assert np.all(frames[:, 0:2, 0:2] == 0)


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_rle_2frame.dcm"]
)
def test_compressed_pixels_are_decoded_blanked_and_stored_uncompressed(name: str) -> None:
    original = _read(name)
    blanked = _check(original, [Region(x=5, y=6, width=20, height=10)])
    assert blanked.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert "PixelData" in blanked and not blanked["PixelData"].is_undefined_length


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_bigendian.dcm",  # big endian: re-encoded little endian
        "liver_1frame.dcm",  # 1 bit allocated
        "SC_ybr_full_422_uncompressed.dcm",  # sub-sampled colour
        "SC_rgb_small_odd.dcm",  # colour, odd length
        "SC_rgb_jpeg_dcmtk.dcm",  # lossy JPEG: the decoded values are what is kept
        "JPEG2000.dcm",
    ],
)
def test_other_layouts_are_blanked_losslessly(name: str) -> None:
    _check(_read(name), [Region(x=1, y=1, width=2, height=2)])


def test_monochrome1_black_is_its_largest_value() -> None:
    path = get_testdata_file("dicomdirtests/77654033/CR1/6154")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
    blanked = _check(ds, [Region(0, 0, 8, 8)])
    assert _black(blanked)[0] == (1 << int(ds.BitsStored)) - 1


@pytest.mark.parametrize(
    "region",
    [
        Region(x=60, y=0, width=10, height=10),  # past the right edge of 64 columns
        Region(x=0, y=-1, width=4, height=4),
        Region(x=0, y=0, width=0, height=4),
        Region(x=0, y=0, width=4, height=4, frame=2),  # a single-frame image
    ],
)
def test_regions_outside_the_image_are_refused(region: Region) -> None:
    with pytest.raises(ValueError, match="region") as caught:
        blank_regions(_read("MR_small.dcm"), [region])
    assert region.describe() in str(caught.value)


def test_no_pixel_data_or_no_region_is_refused() -> None:
    with pytest.raises(ValueError, match="Pixel Data"):
        blank_regions(Dataset(), [Region(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="no region"):
        blank_regions(_read("MR_small.dcm"), [])


def test_blanking_a_teaching_copy_records_clean_pixel_data() -> None:
    source = _read("SC_rgb_small_odd.dcm")
    source.BurnedInAnnotation = "YES"
    copy = deidentify(source, secret=SECRET).dataset
    blanked = blank_regions(copy, [Region(0, 0, 2, 2)]).dataset
    codes = [item.CodeValue for item in blanked.DeidentificationMethodCodeSequence]
    assert "113101" in codes and codes[0] == "113100"
    assert "Clean Pixel Data Option" in list(blanked.DeidentificationMethod)
    assert blanked.BurnedInAnnotation == "NO"
    assert copy.BurnedInAnnotation == "YES"
