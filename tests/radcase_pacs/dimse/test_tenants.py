"""Calling AE titles map to institutions: what an AE stores lands in its institution, and
what it finds or retrieves comes from there only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind

from radcase_pacs.dimse.server import DimseServer
from storage.archive import Archive
from storage.errors import NotFound
from tests.factories import make_instance


def _store(server: DimseServer, calling: str, ds: Dataset) -> int:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
    assert assoc.is_established
    status = int(assoc.send_c_store(ds).Status)
    assoc.release()
    return status


def _find_studies(server: DimseServer, calling: str) -> set[str]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    query.PatientName = ""
    found = set()
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if status and status.Status in (0xFF00, 0xFF01) and identifier is not None:
            found.add(str(identifier.StudyInstanceUID))
    assoc.release()
    return found


def test_each_calling_ae_stores_and_finds_in_its_own_institution(
    start_dimse: Callable[..., DimseServer], archive: Archive
) -> None:
    server = start_dimse(dimse_ae_tenants="CT_B=hospital-b")
    home, other = make_instance(patient_name="HOME^ONE"), make_instance(patient_name="B^ONE")
    assert _store(server, "CT_A", home) == 0
    assert _store(server, "CT_B", other) == 0
    assert _find_studies(server, "CT_A") == {home.StudyInstanceUID}
    assert _find_studies(server, "CT_B") == {other.StudyInstanceUID}
    in_b = archive.with_tenant("hospital-b").instances(other.StudyInstanceUID)
    assert [i.sop_uid for i in in_b] == [other.SOPInstanceUID]
    with pytest.raises(NotFound):
        archive.instances(other.StudyInstanceUID)
