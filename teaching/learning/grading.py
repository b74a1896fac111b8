"""Grading a learner's answer against a question's key: pure functions, no I/O.

Every rule errs towards what an educator means rather than what a learner typed: a free-text
diagnosis is compared after :func:`normalise` (case, accents, apostrophes, punctuation and word
order do not count), a point on the very border of a region counts as inside it. What never
counts is a near miss: a partial multiple-choice selection, a different word, the right spot on
the wrong image.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

from teaching.learning.questions import (
    Answer,
    Ellipse,
    FreeTextAnswer,
    FreeTextKey,
    Key,
    LocateAnswer,
    LocateKey,
    MultipleChoiceAnswer,
    MultipleChoiceKey,
    Polygon,
)

TOLERANCE = 1e-9
"""Pixels: a point this close to a region's border counts as on it. Coordinates are at most
1e6 (see ``Coordinate``), where a float's spacing is about 1.2e-10, so this absorbs the rounding
of the arithmetic below without letting in any point a learner could actually aim at."""

_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc`")
"""Deleted, not separating: "Crohn's", "Crohn’s" and "Crohns" are the same word. U+02BC
(modifier letter apostrophe) is a letter to Unicode, so it must go before the letter test."""


def normalise(text: str) -> str:
    """The comparison form of a free-text diagnosis.

    Learners type on phones and keyboards in any language: "Ménétrier" and "menetrier",
    "Straße" and "strasse", "Crohn's" and "Crohns", "pneumothorax, tension" and "Tension
    pneumothorax" must all compare equal. So: Unicode NFKD (ligatures and full-width forms
    become plain letters, accents become separate marks), marks removed, casefolded,
    apostrophes deleted, every other character that is not a letter or digit taken as a word
    separator, and the words sorted (repeats kept) and joined by one space. Text with no
    letter or digit normalises to "".
    """
    decomposed = unicodedata.normalize("NFKD", text)
    unmarked = "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M"))
    folded = unmarked.casefold().translate(_APOSTROPHES)
    words = "".join(ch if ch.isalnum() else " " for ch in folded).split()
    return " ".join(sorted(words))


def point_in_polygon(x: float, y: float, points: Sequence[tuple[float, float]]) -> bool:
    """Whether (x, y) lies inside the closed polygon ``points`` or on its border.

    The border is inclusive (within :data:`TOLERANCE`) because an educator outlining a finding
    means the outline to be part of it, and a ray-casting test alone is arbitrary on edges and
    vertices. The interior follows the even-odd rule, so concave and self-touching outlines
    work; a repeated vertex is a zero-length edge, which neither crosses the ray nor breaks the
    distance test. The polygon closes itself: the last point joins the first.
    """
    inside = False
    for i, (bx, by) in enumerate(points):
        ax, ay = points[i - 1]
        if _distance_to_segment(x, y, ax, ay, bx, by) <= TOLERANCE:
            return True
        # Half-open crossing rule: an edge counts when one end is above the ray and the other
        # is not, so a ray through a vertex is counted once and horizontal edges never.
        if (ay > y) != (by > y):
            crossing_x = ax + (y - ay) * (bx - ax) / (by - ay)
            if x < crossing_x:
                inside = not inside
    return inside


def point_in_ellipse(x: float, y: float, ellipse: Ellipse) -> bool:
    """Whether (x, y) lies inside the axis-aligned ellipse or on its border.

    ((x-cx)/rx)² + ((y-cy)/ry)² <= 1, border inclusive for the same reason as polygons. The
    tolerance is applied in pixels, by growing both semi-axes by :data:`TOLERANCE`, rather
    than to the dimensionless sum, where a fixed slack would mean a different distance for
    every size of ellipse.
    """
    u = (x - ellipse.cx) / (ellipse.rx + TOLERANCE)
    v = (y - ellipse.cy) / (ellipse.ry + TOLERANCE)
    return u * u + v * v <= 1.0


def grade(key: Key, answer: Answer) -> bool:
    """Whether ``answer`` is right for ``key``.

    Raises ``ValueError`` when the answer is of another kind than the key: the service rejects
    that before grading, so reaching it here is a programming error, not a wrong answer.
    """
    if isinstance(key, MultipleChoiceKey) and isinstance(answer, MultipleChoiceAnswer):
        return _grade_multiple_choice(key, answer)
    if isinstance(key, FreeTextKey) and isinstance(answer, FreeTextAnswer):
        return _grade_free_text(key, answer)
    if isinstance(key, LocateKey) and isinstance(answer, LocateAnswer):
        return _grade_locate(key, answer)
    raise ValueError(f"a {answer.kind} answer cannot be graded against a {key.kind} key")


def _grade_multiple_choice(key: MultipleChoiceKey, answer: MultipleChoiceAnswer) -> bool:
    """Exactly the correct set: selecting everything must not be a strategy that pays, and
    a partial selection shows the learner missed something. Order and repeats do not count."""
    return set(answer.selected) == set(key.correct)


def _grade_free_text(key: FreeTextKey, answer: FreeTextAnswer) -> bool:
    """Equal, after normalising, to an accepted answer or a synonym. Whole words only: a
    substring or a plural ("pneumothoraces" for "pneumothorax") is another word, and the
    educator lists it as a synonym if it is meant to count."""
    given = normalise(answer.text)
    if not given:
        return False
    return any(normalise(expected) == given for expected in (*key.accepted, *key.synonyms))


def _grade_locate(key: LocateKey, answer: LocateAnswer) -> bool:
    """On the keyed frame of the keyed instance, inside or on the region: the same pixel
    coordinates on another image point at a different anatomy."""
    if answer.sop_instance_uid != key.sop_instance_uid or answer.frame != key.frame:
        return False
    region = key.region
    if isinstance(region, Polygon):
        return point_in_polygon(answer.x, answer.y, region.points)
    return point_in_ellipse(answer.x, answer.y, region)


def _distance_to_segment(x: float, y: float, ax: float, ay: float, bx: float, by: float) -> float:
    """Euclidean distance from (x, y) to the segment a-b; a zero-length segment is a point."""
    dx, dy = bx - ax, by - ay
    length_squared = dx * dx + dy * dy
    if length_squared == 0.0:
        return math.hypot(x - ax, y - ay)
    t = ((x - ax) * dx + (y - ay) * dy) / length_squared
    t = min(1.0, max(0.0, t))
    return math.hypot(x - (ax + t * dx), y - (ay + t * dy))
