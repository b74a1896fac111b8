"""Rendered resources, thumbnails and decompressed frames (PS3.18 §10.4.1.1.3-4, §8.3.5.1),
checked pixel for pixel against a reference computed independently from pydicom (see
``render_util``), on pydicom's test files and on generated instances for what they lack."""

from __future__ import annotations

import io
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
import redis
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array
from pydicom.uid import UID, generate_uid
from starlette.testclient import TestClient

from storage.cache.memory import MemoryCache
from storage.cache.redis import RedisCache
from storage.stores import Stores
from tests.dicomweb.multipart_util import split_multipart
from tests.dicomweb.render_util import (
    decode_image,
    instance_url,
    number_of_frames,
    read,
    reference,
    store,
    to_uint8,
)
from tests.factories import CORPUS, CORPUS_DIR, make_instance, stow, to_bytes

PNG = {"Accept": "image/png"}
MULTIPART_PNG = {"Accept": 'multipart/related; type="image/png"'}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
OCTET_EXPLICIT_LE = (
    f"multipart/related; type=application/octet-stream; transfer-syntax={EXPLICIT_LE}"
)


def _groups() -> dict[str, list[Path]]:
    """pydicom's test files with pixel data, grouped by (Photometric Interpretation, Bits
    Allocated, Bits Stored, Pixel Representation, transfer syntax)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in CORPUS:
            ds = pydicom.dcmread(path, stop_before_pixels=False, force=True)
            if "PixelData" not in ds:
                continue
            key = "/".join(
                str(ds.get(k, ""))
                for k in (
                    "PhotometricInterpretation",
                    "BitsAllocated",
                    "BitsStored",
                    "PixelRepresentation",
                )
            )
            groups[f"{key}/{ds.file_meta.TransferSyntaxUID}"].append(path)
    return dict(sorted(groups.items()))


GROUPS = _groups()


def _decodable(paths: list[Path]) -> tuple[Path, Dataset] | None:
    """The first file of a group pydicom itself can decode. A Number of Frames that is not
    an integer is read as one frame first, as the server reads it (a single frame when
    missing or invalid)."""
    for path in paths:
        ds = read(path.read_bytes())
        try:
            int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            ds.NumberOfFrames = 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pixel_array(ds, index=0)
        except Exception:
            continue
        return path, ds
    return None


@pytest.mark.parametrize("group", list(GROUPS), ids=list(GROUPS))
def test_every_group_of_the_corpus_renders_exactly_as_the_reference(
    dicomweb_client: TestClient, group: str
) -> None:
    found = _decodable(GROUPS[group])
    if found is None:
        # Nothing in the group decodes even in pydicom: the server must say why, not 500.
        ds = store(dicomweb_client, GROUPS[group][0])
        response = dicomweb_client.get(instance_url(ds) + "/rendered", headers=PNG)
        assert response.status_code == 409
        assert "cannot be decoded" in response.text
        return
    path, ds = found
    store(dicomweb_client, path)
    frames = number_of_frames(ds)
    if frames == 1:
        response = dicomweb_client.get(instance_url(ds) + "/rendered", headers=PNG)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        bodies = [response.content]
    else:
        shown = min(frames, 3)
        listed = ",".join(str(n) for n in range(1, shown + 1))
        response = dicomweb_client.get(
            instance_url(ds) + f"/frames/{listed}/rendered", headers=MULTIPART_PNG
        )
        assert response.status_code == 200, response.text
        parts = split_multipart(response)
        assert [p.headers["content-type"] for p in parts] == ["image/png"] * shown
        assert parts[0].headers["content-location"].endswith("/frames/1/rendered")
        bodies = [p.body for p in parts]
    for index, body in enumerate(bodies):
        expected = reference(ds, index)
        got = decode_image(body)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), f"frame {index + 1} of {path.name}"


def test_a_narrow_window_saturates_more_and_follows_the_ps33_formula(
    dicomweb_client: TestClient,
) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")
    default = decode_image(dicomweb_client.get(instance_url(ds) + "/rendered", headers=PNG).content)
    narrow = decode_image(
        dicomweb_client.get(instance_url(ds) + "/rendered?window=40,80,linear", headers=PNG).content
    )
    assert np.array_equal(narrow, reference(ds, 0, (40.0, 80.0, "LINEAR")))
    saturated = lambda image: np.count_nonzero((image == 0) | (image == 255))  # noqa: E731
    assert saturated(narrow) > saturated(default)
    # One pixel by hand: PS3.3 C.11.2.1.2.1 with ymin 0, ymax 255.
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    inside = np.argwhere((hu > 0.5) & (hu < 79.5))
    assert len(inside) > 0
    row, col = inside[0]
    x = hu[row, col]
    assert narrow[row, col] == np.floor(((x - 39.5) / 79 + 0.5) * 255 + 0.5)


@pytest.mark.parametrize(
    ("window", "function"),
    [("600,1600,linear-exact", "LINEAR_EXACT"), ("700,900,sigmoid", "SIGMOID")],
)
def test_window_functions_linear_exact_and_sigmoid(
    dicomweb_client: TestClient, window: str, function: str
) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "MR_small.dcm")
    response = dicomweb_client.get(instance_url(ds) + f"/rendered?window={window}", headers=PNG)
    assert response.status_code == 200
    center, width, _ = window.split(",")
    expected = reference(ds, 0, (float(center), float(width), function))
    assert np.array_equal(decode_image(response.content), expected)


def test_monochrome1_is_inverted_after_the_window(dicomweb_client: TestClient) -> None:
    path = next(p for p in GROUPS if p.startswith("MONOCHROME1"))
    ds = store(dicomweb_client, GROUPS[path][0])
    response = dicomweb_client.get(
        instance_url(ds) + "/rendered?window=1000,2000,linear", headers=PNG
    )
    expected = reference(ds, 0, (1000.0, 2000.0, "LINEAR"))
    assert np.array_equal(decode_image(response.content), expected)
    assert expected.max() > 0  # 255 - window: bright where the window is dark


def test_jpeg_is_close_to_the_reference(dicomweb_client: TestClient) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")
    expected = reference(ds, 0).astype(float)
    for quality, tolerance in (("", 3.0), ("?quality=100", 1.0)):
        response = dicomweb_client.get(
            instance_url(ds) + f"/rendered{quality}", headers={"Accept": "image/jpeg"}
        )
        assert response.headers["content-type"] == "image/jpeg"
        got = decode_image(response.content).astype(float)
        assert np.abs(got - expected).mean() < tolerance


def test_gif_of_a_grayscale_image_is_lossless(dicomweb_client: TestClient) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "MR_small.dcm")
    response = dicomweb_client.get(instance_url(ds) + "/rendered", headers={"Accept": "image/gif"})
    assert response.headers["content-type"] == "image/gif"
    assert np.array_equal(decode_image(response.content)[..., 0], reference(ds, 0))


def test_viewport_scales_to_fit_and_crops_and_flips_the_source_region(
    dicomweb_client: TestClient,
) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")  # 128 x 128
    url = instance_url(ds) + "/rendered"
    assert decode_image(
        dicomweb_client.get(url + "?viewport=64,32", headers=PNG).content
    ).shape == (32, 32)
    assert decode_image(
        dicomweb_client.get(url + "?viewport=300,200", headers=PNG).content
    ).shape == (
        200,
        200,
    )
    full = reference(ds, 0)
    crop = decode_image(
        dicomweb_client.get(url + "?viewport=50,40,10,20,50,40", headers=PNG).content
    )
    assert np.array_equal(crop, full[20:60, 10:60])
    flipped = decode_image(
        dicomweb_client.get(url + "?viewport=50,40,10,20,-50,40", headers=PNG).content
    )
    assert np.array_equal(flipped, full[20:60, 10:60][:, ::-1])
    to_edge = decode_image(
        dicomweb_client.get(url + "?viewport=28,28,100,100,,", headers=PNG).content
    )
    assert np.array_equal(to_edge, full[100:, 100:])


def test_quality_only_changes_jpeg(dicomweb_client: TestClient) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")
    url = instance_url(ds) + "/rendered"
    low = dicomweb_client.get(url + "?quality=5", headers={"Accept": "image/jpeg"}).content
    high = dicomweb_client.get(url + "?quality=95", headers={"Accept": "image/jpeg"}).content
    assert len(low) < len(high)
    png = dicomweb_client.get(url + "?quality=5&annotation=patient,technique", headers=PNG)
    assert png.status_code == 200
    assert np.array_equal(decode_image(png.content), reference(ds, 0))


# -- generated instances: what the corpus lacks ----------------------------------------------


def _image(
    values: np.ndarray,
    *,
    bits_allocated: int,
    bits_stored: int,
    signed: bool,
    photometric: str = "MONOCHROME2",
    **attributes: object,
) -> Dataset:
    rows, columns = values.shape[:2]
    ds = make_instance(rows=rows, columns=columns)
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.PhotometricInterpretation = photometric
    if values.ndim == 3:
        ds.SamplesPerPixel = values.shape[2]
        ds.PlanarConfiguration = 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    kind = ("i" if signed else "u") + str(bits_allocated // 8)
    ds.PixelData = values.astype(f"<{kind}").tobytes()
    return ds


def _lut_item(first: int, bits: int, data: np.ndarray) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.LUTData = data.astype("<u2").tobytes()
    item["LUTData"].VR = "OW"
    return item


def _ramp(rows: int, columns: int, low: int, high: int) -> np.ndarray:
    return np.linspace(low, high, rows * columns).round().reshape(rows, columns)


def _check(
    dicomweb_client: TestClient, ds: Dataset, window: tuple[float, float, str] | None = None
) -> None:
    store(dicomweb_client, ds)
    query = (
        f"?window={window[0]},{window[1]},{window[2].lower().replace('_', '-')}" if window else ""
    )
    response = dicomweb_client.get(instance_url(ds) + "/rendered" + query, headers=PNG)
    assert response.status_code == 200, response.text
    assert np.array_equal(decode_image(response.content), reference(read(to_bytes(ds)), 0, window))


def test_signed_8_bit_without_window_uses_the_full_range_present(
    dicomweb_client: TestClient,
) -> None:
    _check(
        dicomweb_client,
        _image(_ramp(16, 20, -100, 90), bits_allocated=8, bits_stored=8, signed=True),
    )


def test_12_bit_signed_with_rescale_and_a_request_window(dicomweb_client: TestClient) -> None:
    ds = _image(
        _ramp(32, 24, -2048, 2047),
        bits_allocated=16,
        bits_stored=12,
        signed=True,
        RescaleSlope=2,
        RescaleIntercept=-100,
    )
    _check(dicomweb_client, ds, (0.0, 1000.0, "LINEAR"))


def test_modality_lut_sequence_and_voi_lut_sequence_in_bulk_data(
    dicomweb_client: TestClient,
) -> None:
    # 4096-entry LUTs are 8 KiB each: stored as BulkDataURI, fetched from the bulk sidecar.
    ds = _image(_ramp(40, 30, 0, 4095), bits_allocated=16, bits_stored=12, signed=False)
    modality = (np.arange(4096) * 3 // 2 + 7).clip(0, 65535)
    ds.ModalityLUTSequence = [_lut_item(0, 16, modality)]
    voi = (np.sqrt(np.arange(8192) / 8191) * 65535).astype(int)
    ds.VOILUTSequence = [_lut_item(0, 16, voi)]
    store(dicomweb_client, ds)
    document = dicomweb_client.get(instance_url(ds) + "/metadata").json()[0]
    assert "BulkDataURI" in document["00283010"]["Value"][0]["00283006"]
    _check(dicomweb_client, ds)


@pytest.mark.parametrize("bits", [8, 16])
def test_palette_color_with_8_and_16_bit_entries(dicomweb_client: TestClient, bits: int) -> None:
    entries = 4096 if bits == 16 else 256
    stored = _ramp(24, 32, 0, entries - 1)
    top = 2**bits - 1
    red, green, blue = (
        (np.arange(entries) * top // (entries - 1)),
        (top - np.arange(entries) * top // (entries - 1)),
        ((np.arange(entries) * 7) % (top + 1)),
    )
    ds = _image(
        stored,
        bits_allocated=16,
        bits_stored=12 if bits == 16 else 8,
        signed=False,
        photometric="PALETTE COLOR",
    )
    for color, data in (("Red", red), ("Green", green), ("Blue", blue)):
        setattr(ds, f"{color}PaletteColorLookupTableDescriptor", [entries, 0, bits])
        raw = data.astype("<u2" if bits == 16 else "u1").tobytes()
        setattr(ds, f"{color}PaletteColorLookupTableData", raw)
        ds[f"{color}PaletteColorLookupTableData"].VR = "OW"
    _check(dicomweb_client, ds)


def test_rgb_in_planar_configuration_1(dicomweb_client: TestClient) -> None:
    rgb = np.stack([_ramp(10, 12, 0, 255), _ramp(10, 12, 255, 0), np.full((10, 12), 77)], -1)
    ds = _image(rgb, bits_allocated=8, bits_stored=8, signed=False, photometric="RGB")
    ds.PlanarConfiguration = 1
    ds.PixelData = rgb.astype("u1").transpose(2, 0, 1).tobytes()
    _check(dicomweb_client, ds)


def test_enhanced_images_take_rescale_and_window_from_functional_groups(
    dicomweb_client: TestClient,
) -> None:
    ds = _image(_ramp(8, 8, 0, 1000), bits_allocated=16, bits_stored=16, signed=False)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope = 1
    transform.RescaleIntercept = -500
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for center in (0, 300):
        item, voi = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, 400
        item.FrameVOILUTSequence = [voi]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    store(dicomweb_client, ds)
    values = _ramp(8, 8, 0, 1000) - 500
    for number, center in ((1, 0.0), (2, 300.0)):
        response = dicomweb_client.get(instance_url(ds) + f"/frames/{number}/rendered", headers=PNG)
        c, w = center - 0.5, 399.0
        y = np.where(
            values <= c - w / 2,
            0,
            np.where(values > c + w / 2, 255, ((values - c) / w + 0.5) * 255),
        )
        assert np.array_equal(decode_image(response.content), to_uint8(y))


# -- representations of several images -------------------------------------------------------


def test_a_multi_frame_instance_is_multipart_first_frame_or_animated_gif(
    dicomweb_client: TestClient,
) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "SC_rgb_rle_2frame.dcm")
    url = instance_url(ds) + "/rendered"
    every = dicomweb_client.get(url, headers=MULTIPART_PNG)
    parts = split_multipart(every)
    assert [p.headers["content-location"].rsplit("/", 2)[-2] for p in parts] == ["1", "2"]
    for index, part in enumerate(parts):
        assert np.array_equal(decode_image(part.body), reference(ds, index))
    assert split_multipart(dicomweb_client.get(url, headers={"Accept": "*/*"}))
    first = dicomweb_client.get(url, headers=PNG)
    assert first.headers["content-type"] == "image/png"
    assert np.array_equal(decode_image(first.content), reference(ds, 0))
    browser = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
    assert (
        dicomweb_client.get(url, headers={"Accept": browser}).headers["content-type"]
        == "image/jpeg"
    )
    gif = dicomweb_client.get(url, headers={"Accept": "image/gif"})
    assert getattr(Image.open(io.BytesIO(gif.content)), "n_frames", 1) == 2


def test_study_and_series_rendered_hold_every_frame_in_display_order(
    dicomweb_client: TestClient,
) -> None:
    study = generate_uid()
    first = make_instance(study_uid=study, series_number=1, instance_number=2)
    second = make_instance(
        study_uid=study, series_uid=first.SeriesInstanceUID, series_number=1, instance_number=1
    )
    multi = make_instance(study_uid=study, series_number=2, frames=3)
    report = make_instance(study_uid=study, series_number=3)
    del report.PixelData
    stow(dicomweb_client, [to_bytes(d) for d in (first, second, multi, report)])
    response = dicomweb_client.get(f"/dicomweb/studies/{study}/rendered", headers=MULTIPART_PNG)
    assert response.status_code == 200
    parts = split_multipart(response)
    locations = [p.headers["content-location"] for p in parts]
    assert [loc.split("/instances/")[1].split("/")[0] for loc in locations] == [
        second.SOPInstanceUID,
        first.SOPInstanceUID,
        *[multi.SOPInstanceUID] * 3,
    ]
    assert np.array_equal(decode_image(parts[0].body), reference(read(to_bytes(second)), 0))
    series = dicomweb_client.get(
        f"/dicomweb/studies/{study}/series/{multi.SeriesInstanceUID}/rendered",
        headers={"Accept": "*/*"},
    )
    assert len(split_multipart(series)) == 3
    assert "no-cache" in series.headers["cache-control"]
    single = dicomweb_client.get(f"/dicomweb/studies/{study}/rendered", headers=PNG)
    assert single.status_code == 406
    assert "multipart/related" in single.text


# -- thumbnails --------------------------------------------------------------------------------


def _cached_thumbnail_keys(stores: Stores, tenant: str = "default") -> list[str]:
    """The thumbnail keys in the archive's cache, whichever cache backend it is (the tests
    using it are marked ``backends``: a thumbnail is kept in the cache backend)."""
    prefix = f"{tenant}/thumb/"
    cache = stores.cache
    if isinstance(cache, RedisCache):
        client = redis.Redis.from_url(cache.url)
        names = client.scan_iter(match=f"{cache.prefix}{prefix}*", count=1000)
        return [n.decode()[len(cache.prefix) :] for n in names]
    assert isinstance(cache, MemoryCache)
    return [k for k in cache._entries if k.startswith(prefix)]


@pytest.mark.backends
def test_thumbnails_of_study_series_and_instance(
    dicomweb_client: TestClient, stores: Stores
) -> None:
    study = generate_uid()
    scout = make_instance(study_uid=study, series_number=1, rows=16, columns=16)
    axial = [
        make_instance(
            study_uid=study,
            series_uid="1.2.826.0.1.3680043.8.498.77",
            series_number=2,
            instance_number=n,
            rows=200,
            columns=100,
        )
        for n in (5, 1, 3, 2, 4)
    ]
    stow(dicomweb_client, [to_bytes(d) for d in (scout, *axial)])
    middle = next(d for d in axial if d.InstanceNumber == 3)

    study_thumb = dicomweb_client.get(f"/dicomweb/studies/{study}/thumbnail")
    assert study_thumb.status_code == 200
    assert study_thumb.headers["content-type"] == "image/jpeg"
    assert "no-cache" in study_thumb.headers["cache-control"]
    series_thumb = dicomweb_client.get(
        f"/dicomweb/studies/{study}/series/{middle.SeriesInstanceUID}/thumbnail"
    )
    instance_thumb = dicomweb_client.get(instance_url(middle) + "/thumbnail")
    assert "immutable" in instance_thumb.headers["cache-control"]
    assert study_thumb.content == series_thumb.content == instance_thumb.content
    assert decode_image(study_thumb.content).shape == (128, 64)  # fits 128x128, 2:1 kept

    png = dicomweb_client.get(instance_url(middle) + "/thumbnail?viewport=50,50", headers=PNG)
    expected = reference(read(to_bytes(middle)), 0)
    assert decode_image(png.content).shape == (50, 25)
    assert abs(float(decode_image(png.content).mean()) - float(expected.mean())) < 2

    scout_thumb = dicomweb_client.get(instance_url(scout) + "/thumbnail", headers=PNG)
    assert decode_image(scout_thumb.content).shape == (128, 128)
    assert len(_cached_thumbnail_keys(stores)) == 3
    assert all(
        middle_key.startswith("default/thumb/") for middle_key in _cached_thumbnail_keys(stores)
    )


@pytest.mark.backends
def test_a_thumbnail_is_cached_and_revalidates(dicomweb_client: TestClient, stores: Stores) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "examples_ybr_color.dcm")
    url = instance_url(ds) + "/thumbnail"
    first = dicomweb_client.get(url)
    cache = stores.cache
    assert isinstance(cache, MemoryCache | RedisCache)
    (key,) = _cached_thumbnail_keys(stores)
    sha = key.split("/")[2]
    assert len(sha) == 64
    hits = cache.hits
    second = dicomweb_client.get(url)
    assert second.content == first.content
    assert cache.hits > hits
    again = dicomweb_client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    # The middle of 30 frames (frame 15) stands for the instance.
    frame = dicomweb_client.get(instance_url(ds) + "/frames/15/thumbnail")
    assert frame.content == first.content


def test_rendered_revalidates_with_its_etag(dicomweb_client: TestClient) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")
    url = instance_url(ds) + "/rendered?window=40,400,linear"
    first = dicomweb_client.get(url, headers=PNG)
    assert first.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert (
        dicomweb_client.get(
            url, headers={**PNG, "If-None-Match": first.headers["etag"]}
        ).status_code
        == 304
    )
    other = dicomweb_client.get(instance_url(ds) + "/rendered?window=40,401,linear", headers=PNG)
    assert other.headers["etag"] != first.headers["etag"]
    jpeg = dicomweb_client.get(
        url, headers={"Accept": "image/jpeg", "If-None-Match": first.headers["etag"]}
    )
    assert jpeg.status_code == 200
    study = dicomweb_client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/thumbnail")
    revalidated = dicomweb_client.get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}/thumbnail",
        headers={"If-None-Match": study.headers["etag"]},
    )
    assert revalidated.status_code == 304


def test_instances_without_pixel_data_or_with_undecodable_frames_say_why(
    dicomweb_client: TestClient,
) -> None:
    report = make_instance()
    del report.PixelData
    stow(dicomweb_client, [to_bytes(report)])
    for suffix in ("/rendered", "/thumbnail"):
        response = dicomweb_client.get(instance_url(report) + suffix)
        assert response.status_code == 404
        assert "no pixel data" in response.text
    assert (
        dicomweb_client.get(f"/dicomweb/studies/{report.StudyInstanceUID}/thumbnail").status_code
        == 404
    )
    broken = store(dicomweb_client, CORPUS_DIR / "JPEG-lossy.dcm")
    response = dicomweb_client.get(instance_url(broken) + "/rendered")
    assert response.status_code == 409
    assert "cannot be decoded" in response.text
    truncated = store(dicomweb_client, CORPUS_DIR / "MR_truncated.dcm")
    response = dicomweb_client.get(instance_url(truncated) + "/thumbnail")
    assert response.status_code == 409
    assert "8192" in response.text


def test_an_encapsulated_syntax_without_a_decoder_is_409_for_rendered_and_406_for_frames(
    dicomweb_client: TestClient,
) -> None:
    ds = make_instance(rows=4, columns=4)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder here
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    store(dicomweb_client, ds)
    rendered = dicomweb_client.get(instance_url(ds) + "/rendered")
    assert rendered.status_code == 409
    assert "decoder" in rendered.text
    frames = dicomweb_client.get(
        instance_url(ds) + "/frames/1",
        headers={"Accept": OCTET_EXPLICIT_LE},
    )
    assert frames.status_code == 406
    assert "no decoder" in frames.text


# -- frames decompressed on request (PS3.18 §8.7.3.5.2) ---------------------------------------

ENCAPSULATED = [
    p
    for p in CORPUS
    if (meta := pydicom.dcmread(p, stop_before_pixels=True, force=True).file_meta)
    and UID(str(meta.get("TransferSyntaxUID", EXPLICIT_LE))).is_encapsulated
]


@pytest.mark.parametrize("path", ENCAPSULATED, ids=[p.name for p in ENCAPSULATED])
def test_compressed_frames_and_instances_decompress_to_pydicoms_pixels(
    dicomweb_client: TestClient, path: Path
) -> None:
    ds = store(dicomweb_client, path)
    count = number_of_frames(ds)
    listed = ",".join(str(n) for n in range(1, count + 1))
    response = dicomweb_client.get(
        instance_url(ds) + f"/frames/{listed}", headers={"Accept": OCTET_EXPLICIT_LE}
    )
    if _decodable([path]) is None:
        assert response.status_code in (404, 406, 409), response.text
        assert response.text
        return
    assert response.status_code == 200, response.text
    expected = ds.pixel_array
    frames = expected if count > 1 else expected[np.newaxis]
    parts = split_multipart(response)
    assert len(parts) == count
    assert response.headers["content-type"].endswith(f"transfer-syntax={EXPLICIT_LE}")
    for part, frame in zip(parts, frames, strict=True):
        got = np.frombuffer(part.body, dtype=frame.dtype.newbyteorder("<")).reshape(frame.shape)
        assert np.array_equal(got, frame)
    whole = dicomweb_client.get(
        instance_url(ds),
        headers={
            "Accept": f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'
        },
    )
    assert whole.status_code == 200
    (part,) = split_multipart(whole)
    transcoded = read(part.body)
    assert transcoded.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert transcoded.SOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(transcoded.pixel_array, expected)
