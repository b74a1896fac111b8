"""What a teaching case is, as the API reads and writes it (pydantic models).

The models are the validation layer: the API answers a body that does not fit with an error
naming the field, and the store only ever sees values that passed. UIDs in a case are always
the teaching copy's (de-identified) UIDs; the clinical study a case came from is never part of
a case as read back.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from storage.query import is_valid_uid
from teaching.cases.codes import CATEGORIES, LEVELS


def _uid(value: str) -> str:
    """PS3.5 §9.1: digits and dots, no leading zeros in a component, at most 64 characters."""
    if not is_valid_uid(value):
        raise ValueError("not a DICOM UID (PS3.5 §9.1: digits and dots, at most 64 characters)")
    return value


def _category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"not an IHE TCE category code (one of {', '.join(CATEGORIES)})")
    return value


def _level(value: str) -> str:
    if value not in LEVELS:
        raise ValueError(f"not an IHE TCE level code (one of {', '.join(LEVELS)})")
    return value


Uid = Annotated[str, AfterValidator(_uid)]
Category = Annotated[str, AfterValidator(_category)]
Level = Annotated[str, AfterValidator(_level)]
Modality = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_]{1,16}$")]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=20000)]


class CaseStatus(StrEnum):
    DRAFT = "draft"
    AWAITING_PATHOLOGY = "awaiting_pathology"
    PUBLISHED = "published"


class PixelReview(StrEnum):
    """Where an instance stands on burned-in text (PS3.15 E.3.1 Clean Pixel Data)."""

    NOT_NEEDED = "not_needed"
    PENDING = "pending"
    CONFIRMED_CLEAN = "confirmed_clean"
    BLANKED = "blanked"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyImage(Strict):
    """An image of the teaching copy the case points at; ``frame`` for multi-frame instances."""

    sop_instance_uid: Uid
    frame: int | None = Field(default=None, ge=1)
    note: Text = ""


class Tags(Strict):
    categories: list[Category] = Field(default_factory=list, max_length=11)
    level: Level | None = None
    modalities: list[Modality] = Field(default_factory=list, max_length=32)
    anatomy: list[Label] = Field(default_factory=list, max_length=32)
    free: list[Label] = Field(default_factory=list, max_length=64)


class CaseFields(Strict):
    """What an educator writes; every field optional so the same model patches a case."""

    title: Title | None = None
    history: Text | None = None
    findings: Text | None = None
    diagnosis: Text | None = None
    differential: list[Annotated[str, StringConstraints(max_length=500)]] | None = Field(
        None, max_length=50
    )
    discussion: Text | None = None
    key_images: list[KeyImage] | None = Field(None, max_length=500)
    tags: Tags | None = None
    status: Literal[CaseStatus.DRAFT, CaseStatus.AWAITING_PATHOLOGY] | None = Field(
        None, description="published is reached through the publish action, never set directly"
    )


class CaseCreate(CaseFields):
    """``POST /api/cases``: a case from a clinical study (or some of its series)."""

    study_instance_uid: Uid
    series_instance_uids: list[Uid] | None = Field(None, min_length=1, max_length=1000)
    title: Title


class CaseUpdate(CaseFields):
    """``PATCH /api/cases/{id}``: the fields given replace the stored ones."""


class InstanceState(BaseModel):
    """One instance of the teaching copy and its pixel review."""

    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    burned_in: bool
    reasons: list[str]
    review: PixelReview


class Case(BaseModel):
    id: str
    title: str
    history: str = ""
    findings: str = ""
    diagnosis: str = ""
    differential: list[str] = Field(default_factory=list)
    discussion: str = ""
    key_images: list[KeyImage] = Field(default_factory=list)
    tags: Tags = Field(default_factory=Tags)
    status: CaseStatus = CaseStatus.DRAFT
    author: str
    note: str = Field("", description="the flagging radiologist's note (KOS description)")
    origin: Literal["api", "kos"] = "api"
    teaching_study_instance_uid: str
    instances: list[InstanceState] = Field(default_factory=list)
    pending_reviews: int = 0
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None


class CaseSummary(BaseModel):
    """A case in a list: no instance list, so a search stays small."""

    id: str
    title: str
    status: CaseStatus
    author: str
    origin: Literal["api", "kos"] = "api"
    tags: Tags
    teaching_study_instance_uid: str
    pending_reviews: int
    updated_at: datetime


class CasePage(BaseModel):
    total: int
    limit: int
    offset: int
    cases: list[CaseSummary]


class RegionIn(Strict):
    """A rectangle to blank, in pixel coordinates of the image; ``frame`` 1-based or all."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    frame: int | None = Field(default=None, ge=1)


class PixelReviewIn(Strict):
    """An educator's decision about one flagged instance."""

    action: Literal["confirm_clean", "blank"]
    regions: list[RegionIn] = Field(default_factory=list, max_length=100)
