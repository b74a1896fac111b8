"""The stack viewer's manifest (radcase_pacs/web/stack.py): order, display attributes as the
frames resource delivers them, and no text of the header."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from radcase_pacs.web.stack import stack_manifest
from storage.archive import Archive
from storage.errors import NotFound
from tests.factories import make_instance, to_bytes

SECRET_SERIES = "Right lower lobe pneumonia, series secret"
SECRET_STUDY = "Diagnosis hidden in the study description"
SECRET_COMMENT = "Image comment naming the finding"


def store(archive: Archive, *datasets: Dataset) -> None:
    for ds in datasets:
        archive.ingest(io.BytesIO(to_bytes(ds)))


def signed_ct(study: str, series: str, number: int, **changes: object) -> Dataset:
    ds = make_instance(study_uid=study, series_uid=series, instance_number=number, series_number=3)
    ds.PixelRepresentation = 1
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = [40, 350]
    ds.WindowWidth = [400, 1500]
    ds.ImagePositionPatient = [0, 0, -float(number)]
    for key, value in changes.items():
        setattr(ds, key, value)
    return ds


def monochrome1(study: str) -> Dataset:
    ds = make_instance(study_uid=study, modality="CR", series_number=1, rows=4, columns=6)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = bytes(range(24))
    return ds


def rgb(study: str, planar: int) -> Dataset:
    ds = make_instance(study_uid=study, modality="XC", series_number=7, rows=2, columns=2)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = bytes(range(12))
    return ds


def test_series_are_ordered_by_number_and_images_by_instance_number(archive: Archive) -> None:
    study, ct = generate_uid(), generate_uid()
    store(archive, *(signed_ct(study, ct, n) for n in (3, 1, 2)), monochrome1(study))
    manifest = stack_manifest(archive, study)
    assert manifest["root"] == "/teaching/dicomweb" and manifest["study"] == study
    assert [s["number"] for s in manifest["series"]] == [1, 3]
    series = manifest["series"][1]
    assert series["uid"] == ct and series["modality"] == "CT"
    assert series["label"] == "CT · series 3 · 3 images"
    assert series["thumbnail"] == f"/teaching/dicomweb/studies/{study}/series/{ct}/thumbnail"
    sops = [image["sop"] for image in series["images"]]
    documents = {
        d["00200013"]["Value"][0]: d["00080018"]["Value"][0] for d in archive.documents(study, ct)
    }
    assert sops == [documents[1], documents[2], documents[3]]


def test_images_without_instance_number_follow_position(archive: Archive) -> None:
    study, ct = generate_uid(), generate_uid()
    made = [signed_ct(study, ct, n) for n in (1, 2, 3)]
    for ds in made:
        del ds.InstanceNumber
    store(archive, *made)
    (series,) = stack_manifest(archive, study, root="/teaching/dicomweb/")["series"]
    # Positions -1, -2, -3: ascending z is the reverse of creation.
    assert [i["sop"] for i in series["images"]] == [ds.SOPInstanceUID for ds in reversed(made)]
    assert series["thumbnail"].startswith("/teaching/dicomweb/studies/")


def test_signed_ct_carries_rescale_and_its_first_window(archive: Archive) -> None:
    study = generate_uid()
    store(archive, signed_ct(study, generate_uid(), 1))
    (image,) = stack_manifest(archive, study)["series"][0]["images"]
    assert image == {
        "sop": image["sop"],
        "frames": 1,
        "rows": 8,
        "columns": 8,
        "bitsAllocated": 16,
        "bitsStored": 16,
        "pixelRepresentation": 1,
        "photometric": "MONOCHROME2",
        "samplesPerPixel": 1,
        "planarConfiguration": 0,
        "slope": 1.0,
        "intercept": -1024.0,
        "window": [40.0, 400.0],
    }


def test_an_unusable_window_is_left_to_the_viewer(archive: Archive) -> None:
    study = generate_uid()
    store(archive, signed_ct(study, generate_uid(), 1, WindowCenter=40, WindowWidth=0))
    (image,) = stack_manifest(archive, study)["series"][0]["images"]
    assert image["window"] is None


def test_multi_frame_frames_count_as_images(archive: Archive) -> None:
    study, series = generate_uid(), generate_uid()
    store(
        archive,
        make_instance(study_uid=study, series_uid=series, frames=3, modality="MR"),
        make_instance(study_uid=study, series_uid=series, instance_number=2, modality="MR"),
    )
    (entry,) = stack_manifest(archive, study)["series"]
    assert [image["frames"] for image in entry["images"]] == [3, 1]
    assert entry["label"] == "MR · series 1 · 4 images"
    assert entry["images"][0]["bitsStored"] == 12
    assert entry["images"][0]["pixelRepresentation"] == 0


def test_monochrome1_is_described_as_stored(archive: Archive) -> None:
    study = generate_uid()
    store(archive, monochrome1(study))
    (image,) = stack_manifest(archive, study)["series"][0]["images"]
    assert image["photometric"] == "MONOCHROME1"
    assert (image["bitsAllocated"], image["bitsStored"], image["rows"], image["columns"]) == (
        8,
        8,
        4,
        6,
    )


@pytest.mark.parametrize("planar", [0, 1])
def test_native_rgb_keeps_its_planar_configuration_and_has_no_window(
    archive: Archive, planar: int
) -> None:
    study = generate_uid()
    store(archive, rgb(study, planar))
    (image,) = stack_manifest(archive, study)["series"][0]["images"]
    assert image["photometric"] == "RGB" and image["samplesPerPixel"] == 3
    assert image["planarConfiguration"] == planar
    assert image["window"] is None and (image["slope"], image["intercept"]) == (1.0, 0.0)


def test_compressed_colour_is_described_as_the_rgb_the_server_delivers(archive: Archive) -> None:
    path = get_testdata_file("SC_rgb_dcmtk_+eb+cy+np.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    store(archive, ds)
    (image,) = stack_manifest(archive, str(ds.StudyInstanceUID))["series"][0]["images"]
    assert (image["photometric"], image["planarConfiguration"]) == ("RGB", 0)


def test_instances_without_displayable_pixels_are_left_out(archive: Archive) -> None:
    study, series = generate_uid(), generate_uid()
    palette = make_instance(study_uid=study, series_uid=series, instance_number=2)
    palette.PhotometricInterpretation = "PALETTE COLOR"
    no_pixels = make_instance(study_uid=study, series_uid=series, instance_number=3)
    del no_pixels.PixelData
    shown = make_instance(study_uid=study, series_uid=series, instance_number=1)
    store(archive, palette, no_pixels, shown)
    (entry,) = stack_manifest(archive, study)["series"]
    assert [image["sop"] for image in entry["images"]] == [shown.SOPInstanceUID]
    assert entry["label"].endswith("· 1 image")


def test_enhanced_multi_frame_rescale_and_window_come_from_the_shared_groups(
    archive: Archive,
) -> None:
    study = generate_uid()
    ds = make_instance(study_uid=study, frames=2)
    transform, voi, shared = Dataset(), Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -100, "US"
    voi.WindowCenter, voi.WindowWidth = 300, 600
    shared.PixelValueTransformationSequence = [transform]
    shared.FrameVOILUTSequence = [voi]
    ds.SharedFunctionalGroupsSequence = [shared]
    store(archive, ds)
    (image,) = stack_manifest(archive, study)["series"][0]["images"]
    assert (image["slope"], image["intercept"], image["window"]) == (2.0, -100.0, [300.0, 600.0])


def test_no_text_of_the_header_reaches_the_manifest(archive: Archive) -> None:
    study, series = generate_uid(), generate_uid()
    made = []
    for number in (1, 2):
        ds = signed_ct(study, series, number)
        ds.SeriesDescription = SECRET_SERIES
        ds.StudyDescription = SECRET_STUDY
        ds.ImageComments = SECRET_COMMENT
        ds.PatientName = "SECRET^PATIENT"
        made.append(ds)
    store(archive, *made)
    body = json.dumps(stack_manifest(archive, study), ensure_ascii=False)
    for secret in (SECRET_SERIES, SECRET_STUDY, SECRET_COMMENT, "SECRET", "pneumonia", "CHEST"):
        assert secret.lower() not in body.lower()


def test_an_unknown_study_is_not_found(archive: Archive) -> None:
    with pytest.raises(NotFound):
        stack_manifest(archive, generate_uid())


def test_a_study_outside_the_callers_view_is_not_found(archive: Archive) -> None:
    study = generate_uid()
    store(archive, signed_ct(study, generate_uid(), 1))
    with pytest.raises(NotFound):
        stack_manifest(archive.restricted_to(frozenset({generate_uid()})), study)


def test_only_the_instances_given_are_in_the_manifest(archive: Archive) -> None:
    study, first, second = generate_uid(), generate_uid(), generate_uid()
    kept = signed_ct(study, first, 1)
    store(archive, kept, signed_ct(study, first, 2), signed_ct(study, second, 1, SeriesNumber=4))
    manifest = stack_manifest(archive, study, only={kept.SOPInstanceUID})
    assert [[i["sop"] for i in s["images"]] for s in manifest["series"]] == [[kept.SOPInstanceUID]]
    assert manifest["series"][0]["label"] == "CT · series 3 · 1 image"
    assert stack_manifest(archive, study, only=set())["series"] == []
