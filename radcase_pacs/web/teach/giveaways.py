"""Where a case gives its answer away before the learner has answered.

A learner meets a case as an unknown: the history, the modality and the images of the
teaching copy. De-identification with the Clean Descriptors option (PS3.15 E.3.5) replaces the
free-text descriptions it knows of, but text survives: coded entries are kept (a Procedure
Code Sequence's Code Meaning "CT chest for pneumothorax"), code strings (Body Part Examined),
attributes outside the profile's table, and whatever the educator wrote in the history. The
learner's viewer never shows that text, but any DICOMweb client the learner points at the
teaching root does (the metadata is theirs to read once the case is published).

So the words of what the learner must find (the title, the diagnosis and the findings) are
compared with every text value left in the teaching copy's metadata and with the history; each
word found is reported with where it was found, for the educator to judge: a hit is not always
a giveaway ("chest" in Body Part Examined of a chest CT), but a giveaway is always a hit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import keyword_for_tag

from storage import json_values as jv

TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
NEUTRAL_VALUES = frozenset({"CLEANED", "ANONYMIZED"})
"""What the de-identification writes in place of text (teaching.deid.actions)."""
SKIPPED_GROUPS = frozenset({0x0002, 0x0012, 0x0028})
"""File meta, the de-identification record (PS3.3 §C.7.1.1: its method and options), and the
image pixel description: none of it is about the patient or the finding."""
SKIPPED_TAGS = frozenset(
    {
        0x00080005,  # Specific Character Set
        0x00080008,  # Image Type
        0x00080060,  # Modality: the learner is told it anyway
        0x00100020,  # Patient ID: the keyed pseudonym the de-identification wrote
    }
)
SOURCES = ("title", "diagnosis", "findings")
MIN_WORD = 3
_STOP_WORDS = """
    about above after again against all also and any are aren't because been before being
    below between both but can cannot could did does doing down during each few for from
    further had has have having her here hers him his how into its itself just more most
    not now off once only other our ours out over own same she should some such than that
    the their theirs them then there these they this those through too under until very
    was were what when where which while who whom why will with without would you your
    yours
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True)
class Hit:
    """One word of the case's answer found in what the learner can see."""

    word: str
    sources: tuple[str, ...]
    """The case fields the word comes from: title, diagnosis, findings."""
    where: str
    """Where it was found: "History", or the attribute's name and tag, with its path into
    sequences."""
    text: str
    """The value it was found in, as the learner would read it."""
    series: tuple[int, ...] = field(default=())
    """The series numbers of the instances carrying that value (empty for the history)."""


def words(text: str) -> set[str]:
    """The telling words of ``text``: case-folded, letters and digits, no stop words, no
    numbers, none shorter than three letters; a plural's final "s" dropped, so that
    "nodules" meets "nodule"."""
    found = set()
    for word in re.findall(r"[^\W_]+", text.casefold()):
        if len(word) < MIN_WORD or word.isdigit() or word in STOP_WORDS:
            continue
        found.add(_stem(word))
    return found


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


def find_giveaways(
    answer: dict[str, str], history: str, documents: Iterable[dict[str, Any]]
) -> list[Hit]:
    """The hits of ``answer`` (field name to text, of :data:`SOURCES`) in the history and in
    the DICOM JSON ``documents`` of the teaching copy's instances; one hit per word, place
    and value, with the fields it comes from and the series it occurs in."""
    wanted: dict[str, list[str]] = {}
    for source in SOURCES:
        for word in sorted(words(answer.get(source, ""))):
            wanted.setdefault(word, []).append(source)
    if not wanted:
        return []
    places: dict[tuple[str, str], set[int]] = {}
    if history.strip():
        places[("History", history.strip())] = set()
    for document in documents:
        number = jv.first_int(document, "00200011")
        for where, text in text_values(document):
            places.setdefault((where, text), set())
            if number is not None:
                places[(where, text)].add(number)
    hits = []
    for (where, text), series in places.items():
        for word in sorted(words(text) & wanted.keys()):
            hits.append(Hit(word, tuple(wanted[word]), where, text, tuple(sorted(series))))
    return sorted(hits, key=lambda h: (h.where != "History", h.word, h.where, h.text))


def text_values(document: dict[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """(where, value) for every text value of a DICOM JSON object, into its sequences."""
    for key, element in document.items():
        if not isinstance(element, dict) or len(key) != 8:
            continue
        try:
            tag = int(key, 16)
        except ValueError:
            continue
        if tag >> 16 in SKIPPED_GROUPS or tag in SKIPPED_TAGS or tag & 0x10000:
            continue  # odd groups are private: removed by the profile, skipped if not
        where = f"{path}{_name(tag)}"
        vr = element.get("vr")
        values = element.get("Value")
        if not isinstance(values, list):
            continue
        if vr == "SQ":
            for item in values:
                if isinstance(item, dict):
                    yield from text_values(item, f"{where} › ")
        elif vr in TEXT_VRS:
            for value in values:
                text = _text(value)
                if text and text not in NEUTRAL_VALUES:
                    yield where, text


def _name(tag: int) -> str:
    keyword = keyword_for_tag(tag)
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", keyword) if keyword else "Attribute"
    return f"{spaced} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _text(value: Any) -> str:
    """A text value; a person name (PS3.18 §F.2.2) as its component groups."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        groups = (value.get(k) for k in ("Alphabetic", "Ideographic", "Phonetic"))
        return " = ".join(g.strip() for g in groups if isinstance(g, str) and g.strip())
    return ""
