"""What an institution keeps: studies, instances and stored bytes, from the index of either
dialect, each institution counted apart."""

from __future__ import annotations

import io
from pathlib import Path

from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.index.base import Index
from storage.records import Usage
from storage.stores import Stores
from tests.factories import make_instance, to_bytes


def test_usage_counts_one_institutions_studies_instances_and_bytes(
    index: Index, tmp_path: Path
) -> None:
    archive = Archive(Stores(index, FilesystemBlobStore(tmp_path / "b"), MemoryCache(1 << 20)))
    archive.open()
    assert archive.usage() == Usage(0, 0, 0)
    first = to_bytes(make_instance())
    study = make_instance()
    second = to_bytes(study)
    third = to_bytes(make_instance(study_uid=study.StudyInstanceUID))
    results = [archive.ingest(io.BytesIO(data)) for data in (first, second, third)]
    archive.with_tenant("elsewhere").ingest(io.BytesIO(to_bytes(make_instance())))
    used = archive.usage()
    assert (used.studies, used.instances) == (2, 3)
    sizes = [
        stored.blob_size
        for r in results
        for stored in archive.instances(r.study_uid, r.series_uid, r.sop_uid)
    ]
    assert used.stored_bytes == sum(sizes) > 0
    assert archive.with_tenant("elsewhere").usage().instances == 1
