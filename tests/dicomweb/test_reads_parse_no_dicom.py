"""Frame and metadata retrieval parse no DICOM at read time (DESIGN "Reads"): with every
pydicom parsing entry point made to fail, they still answer, cold and warm."""

from __future__ import annotations

import pydicom.filereader
import pytest
from starlette.testclient import TestClient

from storage.stores import Stores
from tests.dicomweb.multipart_util import split_multipart
from tests.factories import CORPUS_DIR, make_instance, stow, to_bytes

pytestmark = pytest.mark.backends

OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(name: str):  # type: ignore[no-untyped-def]
        def parse(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"DICOM parsed at read time via {name}")

        return parse

    for name in (
        "read_partial",
        "read_dataset",
        "data_element_generator",
        "dcmread",
        "read_preamble",
        "_read_file_meta_info",
    ):
        monkeypatch.setattr(pydicom.filereader, name, refuse(name))
    monkeypatch.setattr(pydicom, "dcmread", refuse("pydicom.dcmread"))
    return calls


def test_frames_and_metadata_are_served_without_parsing_dicom(
    dicomweb_client: TestClient, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    native = make_instance(frames=3, study_uid="1.2.3.1", series_uid="1.2.3.2")
    compressed = (CORPUS_DIR / "SC_rgb_rle_2frame.dcm").read_bytes()
    assert stow(dicomweb_client, [to_bytes(native), compressed]).status_code == 200
    stores.cache.close()  # cold: nothing cached
    calls = _forbid_parsing(monkeypatch)

    base = f"/dicomweb/studies/1.2.3.1/series/1.2.3.2/instances/{native.SOPInstanceUID}"
    frames = dicomweb_client.get(base + "/frames/1,3", headers={"Accept": OHIF_FRAMES})
    assert frames.status_code == 200
    assert len(split_multipart(frames)) == 2
    for url in (
        "/dicomweb/studies/1.2.3.1/metadata",
        "/dicomweb/studies/1.2.3.1/series/1.2.3.2/metadata",
        base + "/metadata",
    ):
        for _ in range(2):  # cold, then warm
            assert dicomweb_client.get(url).status_code == 200
    (rle,) = [
        m
        for m in dicomweb_client.get("/dicomweb/instances").json()
        if m["0020000D"]["Value"][0] != "1.2.3.1"
    ]
    rle_url = rle["00081190"]["Value"][0].removeprefix("http://testserver")
    assert (
        dicomweb_client.get(rle_url + "/frames/2", headers={"Accept": OHIF_FRAMES}).status_code
        == 200
    )
    assert calls == []
