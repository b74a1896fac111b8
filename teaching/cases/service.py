"""Teaching cases: made from clinical studies, authored, reviewed for burned-in text and
published.

The service is the only code that reads the clinical archive for teaching, and it only reads
it; what it writes goes to the teaching archive (de-identified copies) and the case store.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from storage.archive import Archive, IngestOutcome, IngestResult
from storage.database.ids import new_id
from storage.database.timestamps import utc_now
from storage.errors import NotFound
from storage.records import AddOutcome, StoredInstance
from teaching.cases.codes import KEY_OBJECT_SELECTION_CLASS
from teaching.cases.errors import CaseNotFound, Conflict, InvalidField
from teaching.cases.export import Exporter, ExportFailed, encode, read_dataset
from teaching.cases.kos import TeachingFileRequest, teaching_file_request
from teaching.cases.models import (
    Case,
    CaseCreate,
    CasePage,
    CaseStatus,
    CaseUpdate,
    KeyImage,
    PixelReview,
    PixelReviewIn,
)
from teaching.cases.store import CaseFilter, CaseStore, NewCase
from teaching.deid import DeidOptions, Region, blank_regions

log = logging.getLogger(__name__)

KOS_TITLE_LENGTH = 200


@dataclass
class CaseService:
    store: CaseStore
    clinical: Archive
    teaching: Archive
    configured_secret: str | None = None
    options: DeidOptions = field(default_factory=DeidOptions)
    _secret: list[str] = field(default_factory=list, repr=False)

    def open(self) -> None:
        """Open the case store and the teaching archive (the clinical archive belongs to the
        app) and settle the de-identification secret."""
        self.store.open()
        self.teaching.open()
        self._secret[:] = [self.configured_secret or self.store.secret()]

    def close(self) -> None:
        self.teaching.close()
        self.store.close()

    def exporter(self, tenant: str) -> Exporter:
        if not self._secret:
            raise RuntimeError("the case service is not open")
        return Exporter(
            clinical=self.clinical.with_tenant(tenant),
            teaching=self.teaching.with_tenant(tenant),
            secret=self._secret[0],
            options=self.options,
        )

    # -- creation -------------------------------------------------------------------------

    def create(self, tenant: str, body: CaseCreate, author: str) -> Case:
        """De-identify the study (or the chosen series) into the teaching collection and
        make a draft case of it; key images name the clinical instances."""
        sources = self._sources(tenant, body.study_instance_uid, body.series_instance_uids)
        content = body.model_dump(
            exclude={"study_instance_uid", "series_instance_uids", "status", "key_images"},
            exclude_none=True,
            mode="json",
        )
        return self._make(
            tenant,
            sources,
            content,
            key_images=body.key_images or [],
            status=body.status or CaseStatus.DRAFT,
            author=author,
        )

    def _sources(
        self, tenant: str, study_uid: str, series_uids: list[str] | None
    ) -> list[StoredInstance]:
        try:
            found = self.clinical.with_tenant(tenant).instances(study_uid)
        except NotFound:
            raise InvalidField(
                ("study_instance_uid",), f"no study {study_uid} in the clinical archive"
            ) from None
        if series_uids is None:
            return found
        present = {i.series_uid for i in found}
        for index, uid in enumerate(series_uids):
            if uid not in present:
                raise InvalidField(
                    ("series_instance_uids", index), f"no series {uid} in study {study_uid}"
                )
        return [i for i in found if i.series_uid in series_uids]

    def _make(
        self,
        tenant: str,
        sources: list[StoredInstance],
        content: dict[str, Any],
        *,
        key_images: list[KeyImage],
        status: CaseStatus,
        author: str,
        note: str = "",
        origin: str = "api",
    ) -> Case:
        exporter = self.exporter(tenant)
        try:
            made = exporter.export(sources, lambda sop: self.store.teaching_instance(tenant, sop))
        except ExportFailed as exc:  # the study's own content; our faults propagate (500)
            raise InvalidField(("study_instance_uid",), str(exc)) from exc
        mapped = []
        for index, key in enumerate(key_images):
            if key.sop_instance_uid not in made.sop_uids:
                raise InvalidField(
                    ("key_images", index, "sop_instance_uid"),
                    f"instance {key.sop_instance_uid} is not part of the case",
                )
            mapped.append(
                key.model_copy(update={"sop_instance_uid": made.sop_uids[key.sop_instance_uid]})
            )
        content["key_images"] = [k.model_dump(mode="json") for k in mapped]
        case_id = new_id()
        self.store.insert_case(
            NewCase(
                tenant=tenant,
                case_id=case_id,
                content=content,
                status=status,
                author=author,
                note=note,
                origin=origin,
                source_study_uid=sources[0].study_uid if sources else "",
                teaching_study_uid=made.teaching_study_uid,
                created_at=utc_now(),
            ),
            made.instances,
            made.uid_pairs,
        )
        return self.get(tenant, case_id)

    # -- KOS "For Teaching File Export" (IHE TCE) ----------------------------------------

    def intake(self, archive: Archive, result: IngestOutcome) -> None:
        """An ingest observer of the clinical archive: a teaching-file KOS newly stored
        becomes a draft case per study it references (anything else is ignored)."""
        if (
            not isinstance(result, IngestResult)
            or result.outcome is not AddOutcome.STORED
            or result.sop_class_uid != KEY_OBJECT_SELECTION_CLASS
        ):
            return
        (stored,) = archive.instances(result.study_uid, result.series_uid, result.sop_uid)
        request = teaching_file_request(read_dataset(archive.read(stored)))
        if request is None:
            return
        for study_uid in request.study_uids:
            case = self._case_from_kos(archive.tenant, request, study_uid)
            if case is not None:
                log.info("KOS %s made draft case %s", request.kos_sop_uid, case.id)

    def _case_from_kos(
        self, tenant: str, request: TeachingFileRequest, study_uid: str
    ) -> Case | None:
        wanted = {r.sop_uid for r in request.references if r.study_uid == study_uid}
        try:
            present = self.clinical.with_tenant(tenant).instances(study_uid)
        except NotFound:
            present = []
        sources = [i for i in present if i.sop_uid in wanted]
        missing = len(wanted) - len(sources)
        if missing:
            log.warning(
                "KOS %s references %d instance(s) of study %s not in the archive",
                request.kos_sop_uid,
                missing,
                study_uid,
            )
        if not sources:
            log.warning(
                "KOS %s: none of the instances of study %s it references is in the archive; "
                "no case made",
                request.kos_sop_uid,
                study_uid,
            )
            return None
        exported = {i.sop_uid for i in sources}
        key_images = [
            KeyImage(sop_instance_uid=k.sop_uid, frame=frame)
            for k in request.key_images
            if k.sop_uid in exported
            for frame in (k.frames or (None,))
        ]
        first_line = request.description.strip().splitlines()[0] if request.description else ""
        return self._make(
            tenant,
            sources,
            {"title": first_line[:KOS_TITLE_LENGTH].strip() or request.title},
            key_images=key_images,
            status=CaseStatus.DRAFT,
            author=request.observer or "kos",
            note=request.description,
            origin="kos",
        )

    # -- reading and authoring ------------------------------------------------------------

    def get(self, tenant: str, case_id: str) -> Case:
        case = self.store.get(tenant, case_id)
        if case is None:
            raise CaseNotFound(case_id)
        return case

    def search(self, tenant: str, where: CaseFilter, limit: int, offset: int) -> CasePage:
        total, cases = self.store.search(tenant, where, limit, offset)
        return CasePage(total=total, limit=limit, offset=offset, cases=cases)

    def update(self, tenant: str, case_id: str, body: CaseUpdate) -> Case:
        current = self.get(tenant, case_id)
        changes = body.model_dump(exclude_unset=True, mode="json")
        for name, value in changes.items():
            if value is None:
                raise InvalidField((name,), f"{name} cannot be null")
        if current.status is CaseStatus.PUBLISHED and "status" in changes:
            raise Conflict("a published case stays published; unpublish it to change its status")
        members = {i.sop_instance_uid for i in current.instances}
        for index, key in enumerate(body.key_images or []):
            if key.sop_instance_uid not in members:
                raise InvalidField(
                    ("key_images", index, "sop_instance_uid"),
                    f"instance {key.sop_instance_uid} is not part of the case",
                )
        updated = self.store.update(tenant, case_id, changes)
        if updated is None:
            raise CaseNotFound(case_id)
        return updated

    def publish(self, tenant: str, case_id: str) -> Case:
        """The publication gate: every instance flagged for burned-in text must have been
        confirmed clean or blanked, and there must be something to show."""
        case = self.get(tenant, case_id)
        if case.status is CaseStatus.PUBLISHED:
            return case
        if not case.instances:
            raise Conflict("the case has no images to publish")
        pending = [i.sop_instance_uid for i in case.instances if i.review is PixelReview.PENDING]
        if pending:
            raise Conflict(
                f"{len(pending)} instance(s) may carry burned-in text: confirm they are clean "
                "or blank the text before publishing",
                pending,
            )
        self.store.publish(tenant, case_id, utc_now())
        return self.get(tenant, case_id)

    def unpublish(self, tenant: str, case_id: str) -> Case:
        """Withdraws a published case from learners without deleting it: back to draft, to
        be corrected and published again. Learners stop meeting it (only published cases are
        quizzed or reachable over the teaching root); their cards and review log of it stay.
        A case that is not published is answered as it is."""
        case = self.get(tenant, case_id)
        if case.status is not CaseStatus.PUBLISHED:
            return case
        self.store.unpublish(tenant, case_id, utc_now())
        return self.get(tenant, case_id)

    def delete(self, tenant: str, case_id: str) -> None:
        """The case, and the teaching copies no other case uses."""
        unused = self.store.delete(tenant, case_id)
        if unused is None:
            raise CaseNotFound(case_id)
        teaching = self.teaching.with_tenant(tenant)
        for inst in unused:
            if inst.pending_key is not None:
                teaching.release(inst.pending_key)
                continue
            with contextlib.suppress(NotFound):
                teaching.delete(inst.study_uid, inst.series_uid, inst.sop_uid)

    # -- burned-in text -------------------------------------------------------------------

    def review(self, tenant: str, case_id: str, sop_uid: str, body: PixelReviewIn) -> Case:
        """An educator's decision on a flagged instance: its copy (blanked or as it is) goes
        into the teaching collection and the instance no longer holds publication back."""
        inst = self.store.instance(tenant, case_id, sop_uid)
        if inst is None:
            self.get(tenant, case_id)
            raise InvalidField(("sop_instance_uid",), f"instance {sop_uid} is not in the case")
        if inst.review is not PixelReview.PENDING or inst.pending_key is None:
            raise Conflict(f"instance {sop_uid} is not awaiting review ({inst.review.value})")
        exporter = self.exporter(tenant)
        data = exporter.teaching.held(inst.pending_key)
        if body.action == "blank":
            data = self._blanked(data, body)
            decision = PixelReview.BLANKED
        elif body.regions:
            raise InvalidField(("regions",), "regions are only given with action 'blank'")
        else:
            decision = PixelReview.CONFIRMED_CLEAN
        try:
            exporter.store(data)
        except ExportFailed as exc:
            raise Conflict(str(exc)) from exc
        self.store.set_review(tenant, sop_uid, decision)
        exporter.teaching.release(inst.pending_key)
        return self.get(tenant, case_id)

    @staticmethod
    def _blanked(data: bytes, body: PixelReviewIn) -> bytes:
        if not body.regions:
            raise InvalidField(("regions",), "give at least one region to blank")
        regions = [Region(r.x, r.y, r.width, r.height, r.frame) for r in body.regions]
        try:
            return encode(blank_regions(read_dataset(data), regions).dataset)
        except ValueError as exc:
            raise InvalidField(("regions",), str(exc)) from exc
