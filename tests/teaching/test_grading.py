"""Grading: exact multiple-choice sets, normalised free text, border-inclusive regions."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teaching.learning.grading import (
    grade,
    normalise,
    point_in_ellipse,
    point_in_polygon,
)
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
    Option,
    Polygon,
    spans_area,
)

INSTANCE = "1.2.826.0.1.3680043.8.498.1"
OTHER_INSTANCE = "1.2.826.0.1.3680043.8.498.2"

SQUARE = [(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)]
# A "U": the notch is the open square (13..17, 13..20) between the two arms.
U_SHAPE = [
    (10.0, 10.0),
    (20.0, 10.0),
    (20.0, 20.0),
    (17.0, 20.0),
    (17.0, 13.0),
    (13.0, 13.0),
    (13.0, 20.0),
    (10.0, 20.0),
]
# Two triangles meeting only at (2, 2): one below, one above.
HOURGLASS = [(0.0, 0.0), (4.0, 0.0), (2.0, 2.0), (4.0, 4.0), (0.0, 4.0), (2.0, 2.0)]


def _choice(correct: list[str]) -> MultipleChoiceKey:
    options = [Option(id=i, text=f"option {i}") for i in "abcde"]
    return MultipleChoiceKey(options=options, correct=correct)


def _locate_polygon(points: list[tuple[float, float]], frame: int = 1) -> LocateKey:
    return LocateKey(sop_instance_uid=INSTANCE, frame=frame, region=Polygon(points=points))


def _locate_ellipse(cx: float, cy: float, rx: float, ry: float) -> LocateKey:
    return LocateKey(sop_instance_uid=INSTANCE, frame=1, region=Ellipse(cx=cx, cy=cy, rx=rx, ry=ry))


def _point(x: float, y: float, frame: int = 1, uid: str = INSTANCE) -> LocateAnswer:
    return LocateAnswer(sop_instance_uid=uid, frame=frame, x=x, y=y)


# --- normalise ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Ménétrier", "menetrier"),
        ("MÉNÉTRIER  disease", "disease menetrier"),
        ("Straße", "strasse"),
        ("Crohn's", "crohns"),
        ("Crohn’s", "crohns"),
        ("Crohnʼs", "crohns"),
        ("Crohn`s", "crohns"),
        ("pneumothorax, tension", "pneumothorax tension"),
        ("Tension pneumothorax", "pneumothorax tension"),
        ("non-Hodgkin/lymphoma", "hodgkin lymphoma non"),
        ("  tab\tand\nnewline  ", "and newline tab"),
        ("ﬁbroma", "fibroma"),  # ligature
        ("ＣＴ２", "ct2"),  # full-width
        ("cyst cyst", "cyst cyst"),  # repeats kept
        ("", ""),
        ("  ", ""),
        ("?!-/.,'", ""),
    ],
)
def test_normalise(typed: str, expected: str) -> None:
    assert normalise(typed) == expected


def test_normalise_keeps_repeated_words_as_a_multiset() -> None:
    assert normalise("cyst cyst") != normalise("cyst")


@given(st.text(max_size=60))
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


@given(
    st.lists(st.text(alphabet="abcdéßÅ'-", min_size=1, max_size=8), max_size=6),
    st.randoms(use_true_random=False),
)
def test_normalise_ignores_word_order(words: list[str], rnd: random.Random) -> None:
    shuffled = list(words)
    rnd.shuffle(shuffled)
    assert normalise(" ".join(words)) == normalise(" ".join(shuffled))


# --- multiple choice ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("correct", "selected", "right"),
    [
        (["b"], ["b"], True),
        (["b"], ["a"], False),
        (["b"], ["a", "b"], False),
        (["b"], [], False),
        (["a", "c", "d"], ["a", "c", "d"], True),
        (["a", "c", "d"], ["d", "a", "c"], True),  # order irrelevant
        (["a", "c", "d"], ["a", "c"], False),  # partial
        (["a", "c", "d"], ["a", "c", "d", "e"], False),  # extra wrong option
        (["a", "c", "d"], ["a", "b", "c", "d", "e"], False),  # everything
        (["a", "c", "d"], ["a", "c", "c", "d", "a"], True),  # duplicates count once
        (["a", "c", "d"], ["a", "c", "zz"], False),  # unknown id
        (["a", "c", "d"], [], False),
    ],
)
def test_multiple_choice(correct: list[str], selected: list[str], right: bool) -> None:
    assert grade(_choice(correct), MultipleChoiceAnswer(selected=selected)) is right


# --- free text ----------------------------------------------------------------------------

MENETRIER = FreeTextKey(
    accepted=["Ménétrier disease"],
    synonyms=["hypertrophic protein-losing gastropathy", "Crohn's-like gastropathy"],
)
PNEUMOTHORAX = FreeTextKey(accepted=["pneumothorax"])


@pytest.mark.parametrize(
    ("key", "typed", "right"),
    [
        (MENETRIER, "Ménétrier disease", True),
        (MENETRIER, "menetrier DISEASE", True),
        (MENETRIER, "Disease, Ménétrier", True),
        # a synonym, with another word order, case, accents and punctuation
        (MENETRIER, "Gastropathy (protein losing, HYPERTROPHIC)", True),
        (MENETRIER, "gastropathy: crohns like", True),
        (MENETRIER, "Gastropathy, Crohn’s-like.", True),
        (MENETRIER, "Ménétrier", False),  # a word missing
        (MENETRIER, "Ménétrier disease disease", False),  # a word too many
        (PNEUMOTHORAX, "Pneumothorax.", True),
        (PNEUMOTHORAX, "pneumothoraces", False),
        (PNEUMOTHORAX, "pneumothora", False),
        (PNEUMOTHORAX, "pneumo thorax", False),
        (PNEUMOTHORAX, "tension pneumothorax", False),
        (PNEUMOTHORAX, "", False),
        (PNEUMOTHORAX, "   ", False),
        (PNEUMOTHORAX, "?!.,-", False),
    ],
)
def test_free_text(key: FreeTextKey, typed: str, right: bool) -> None:
    assert grade(key, FreeTextAnswer(text=typed)) is right


def test_free_text_answer_of_only_punctuation_never_matches_a_key_of_only_punctuation() -> None:
    key = FreeTextKey(accepted=["???"], synonyms=["-"])
    assert grade(key, FreeTextAnswer(text="???")) is False
    assert grade(key, FreeTextAnswer(text="")) is False


# --- locate: polygons ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "right"),
    [
        (15.0, 15.0, True),  # interior
        (15.0, 10.0, True),  # on an edge (horizontal)
        (20.0, 12.5, True),  # on an edge (vertical)
        (10.0, 10.0, True),  # on a vertex
        (20.0, 20.0, True),  # on a vertex
        (15.0, 9.99, False),  # 0.01 outside an edge
        (20.01, 12.5, False),
        (9.99, 9.99, False),  # 0.01 outside a vertex, diagonally
        (20.0, 20.01, False),
        (15.0, 10.0 - 1e-10, True),  # within the floating-point tolerance
        (15.0, 10.0 - 1e-6, False),  # beyond it
    ],
)
def test_locate_polygon_border_inclusive(x: float, y: float, right: bool) -> None:
    assert grade(_locate_polygon(SQUARE), _point(x, y)) is right


def test_locate_polygon_on_a_diagonal_edge() -> None:
    triangle = [(0.0, 0.0), (30.0, 0.0), (0.0, 30.0)]
    key = _locate_polygon(triangle)
    assert grade(key, _point(10.0, 20.0)) is True  # on the hypotenuse x + y = 30
    assert grade(key, _point(10.01, 20.0)) is False
    assert grade(key, _point(10.0, 20.01)) is False


@pytest.mark.parametrize(
    ("x", "y", "right"),
    [
        (15.0, 15.0, False),  # in the notch
        (15.0, 19.0, False),  # deep in the notch
        (15.0, 13.0, True),  # on the notch's floor
        (13.0, 16.0, True),  # on the notch's side
        (17.0, 20.0, True),  # on a reflex-side vertex
        (11.5, 18.0, True),  # in the left arm
        (18.5, 18.0, True),  # in the right arm
        (15.0, 11.5, True),  # in the base
    ],
)
def test_locate_concave_polygon(x: float, y: float, right: bool) -> None:
    assert grade(_locate_polygon(U_SHAPE), _point(x, y)) is right


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [
        (2.0, 1.0, True),
        (2.0, 3.0, True),
        (2.0, 2.0, True),  # the touching vertex
        (1.0, 2.0, False),  # between the triangles, level with the touching vertex
        (3.0, 2.0, False),
        (0.5, 2.0, False),
    ],
)
def test_self_touching_polygon_even_odd(x: float, y: float, inside: bool) -> None:
    assert point_in_polygon(x, y, HOURGLASS) is inside


def test_repeated_vertices_and_explicit_closing_change_nothing() -> None:
    messy = [
        (10.0, 10.0),
        (10.0, 10.0),
        (20.0, 10.0),
        (20.0, 20.0),
        (20.0, 20.0),
        (20.0, 20.0),
        (10.0, 20.0),
        (10.0, 10.0),
    ]
    for x, y in [(15.0, 15.0), (10.0, 10.0), (20.0, 15.0), (15.0, 9.99), (25.0, 15.0)]:
        assert point_in_polygon(x, y, messy) is point_in_polygon(x, y, SQUARE)
    assert point_in_polygon(15.0, 15.0, messy) is True
    assert point_in_polygon(25.0, 15.0, messy) is False


def test_polygon_orientation_does_not_matter() -> None:
    clockwise = list(reversed(U_SHAPE))
    for x, y in [(15.0, 15.0), (11.5, 18.0), (13.0, 16.0), (25.0, 25.0)]:
        assert point_in_polygon(x, y, clockwise) is point_in_polygon(x, y, U_SHAPE)


def test_ray_through_a_vertex_is_counted_once() -> None:
    diamond = [(0.0, 5.0), (5.0, 0.0), (10.0, 5.0), (5.0, 10.0)]
    assert point_in_polygon(5.0, 5.0, diamond) is True  # the ray passes (10, 5)
    assert point_in_polygon(-1.0, 5.0, diamond) is False  # the ray passes (0, 5) and (10, 5)
    assert point_in_polygon(-1.0, 0.0, diamond) is False  # the ray touches (5, 0) only


# --- locate: ellipses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "right"),
    [
        (100.0, 50.0, True),  # centre
        (140.0, 50.0, True),  # (cx + rx, cy): on the border
        (60.0, 50.0, True),
        (100.0, 30.0, True),  # (cx, cy - ry)
        (100.0, 70.0, True),
        (140.01, 50.0, False),  # 0.01 outside
        (100.0, 70.01, False),
        (100.0, 29.99, False),
        (139.0, 69.0, False),  # inside the bounding box, outside the ellipse
        (140.0 + 1e-10, 50.0, True),  # within the floating-point tolerance
        (140.0 + 1e-6, 50.0, False),
    ],
)
def test_locate_ellipse_border_inclusive(x: float, y: float, right: bool) -> None:
    assert grade(_locate_ellipse(100.0, 50.0, 40.0, 20.0), _point(x, y)) is right


# --- locate: which image ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        _locate_polygon(SQUARE, frame=3),
        LocateKey(sop_instance_uid=INSTANCE, frame=3, region=Ellipse(cx=15, cy=15, rx=5, ry=5)),
    ],
)
def test_locate_needs_the_keyed_frame_of_the_keyed_instance(key: LocateKey) -> None:
    assert grade(key, _point(15.0, 15.0, frame=3)) is True
    assert grade(key, _point(15.0, 15.0, frame=2)) is False
    assert grade(key, _point(15.0, 15.0, frame=1)) is False
    assert grade(key, _point(15.0, 15.0, frame=3, uid=OTHER_INSTANCE)) is False


def test_locate_frame_defaults_to_the_first() -> None:
    """Bodies as the API receives them, without ``frame``."""
    key = LocateKey.model_validate(
        {"sop_instance_uid": INSTANCE, "region": {"shape": "polygon", "points": SQUARE}}
    )
    answer = LocateAnswer.model_validate({"sop_instance_uid": INSTANCE, "x": 15, "y": 15})
    assert grade(key, answer) is True
    assert grade(key, _point(15.0, 15.0, frame=2)) is False
    assert grade(_locate_polygon(SQUARE, frame=2), answer) is False


# --- kinds --------------------------------------------------------------------------------

KEYS: list[Key] = [_choice(["a"]), PNEUMOTHORAX, _locate_polygon(SQUARE)]
ANSWERS: list[Answer] = [
    MultipleChoiceAnswer(selected=["a"]),
    FreeTextAnswer(text="pneumothorax"),
    _point(15.0, 15.0),
]


@pytest.mark.parametrize("key_index", range(3))
@pytest.mark.parametrize("answer_index", range(3))
def test_answer_of_another_kind_is_a_programming_error(key_index: int, answer_index: int) -> None:
    key, answer = KEYS[key_index], ANSWERS[answer_index]
    if key_index == answer_index:
        assert grade(key, answer) is True
    else:
        with pytest.raises(ValueError, match="cannot be graded"):
            grade(key, answer)


# --- properties ---------------------------------------------------------------------------

coordinates = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
points = st.tuples(coordinates, coordinates)


@st.composite
def rectangles(draw: st.DrawFn) -> list[tuple[float, float]]:
    (x0, y0), (x1, y1) = draw(points), draw(points)
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# Outlines on one line are refused by the model (a region must have an area).
triangles = st.lists(points, min_size=3, max_size=3).filter(spans_area)


@given(st.one_of(rectangles().filter(spans_area), triangles))
def test_vertices_and_edge_midpoints_of_convex_polygons_are_inside(
    polygon: list[tuple[float, float]],
) -> None:
    key = _locate_polygon(polygon)
    for i, (bx, by) in enumerate(polygon):
        ax, ay = polygon[i - 1]
        assert grade(key, _point(bx, by)), (bx, by)
        mx, my = (ax + bx) / 2, (ay + by) / 2
        assert grade(key, _point(mx, my)), (mx, my)


@given(rectangles().filter(spans_area), st.floats(min_value=0.01, max_value=1e3))
def test_points_beyond_a_rectangle_are_outside(
    rectangle: list[tuple[float, float]], gap: float
) -> None:
    xs = [x for x, _ in rectangle]
    ys = [y for _, y in rectangle]
    centre_y = (min(ys) + max(ys)) / 2
    assert point_in_polygon(max(xs) + gap, centre_y, rectangle) is False
    assert point_in_polygon(min(xs) - gap, centre_y, rectangle) is False
    assert point_in_polygon((min(xs) + max(xs)) / 2, max(ys) + gap, rectangle) is False


@given(
    st.floats(min_value=-1e4, max_value=1e4),
    st.floats(min_value=-1e4, max_value=1e4),
    st.floats(min_value=1.0, max_value=1e4),
    st.floats(min_value=1.0, max_value=1e4),
    st.floats(min_value=0.0, max_value=6.3),
)
def test_ellipse_border_is_inside_and_a_little_beyond_is_outside(
    cx: float, cy: float, rx: float, ry: float, angle: float
) -> None:
    ellipse = Ellipse(cx=cx, cy=cy, rx=rx, ry=ry)
    c, s = math.cos(angle), math.sin(angle)
    assert point_in_ellipse(cx + rx * c, cy + ry * s, ellipse)
    assert not point_in_ellipse(cx + 1.001 * rx * c, cy + 1.001 * ry * s, ellipse)
