"""Small charts drawn on the server as inline SVG: no chart library, no script, nothing the
Content Security Policy has to allow (presentation comes from classes in ``app.css``).

Each chart is an image with a title and a one-sentence description for screen readers
(``role="img"``, ``aria-labelledby``); the pages put the same figures in a table beside it,
which is the text alternative a chart of many points needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 30
_ids = count(1)


@dataclass(frozen=True)
class Point:
    label: str
    """What the x axis shows for the point (a day)."""
    value: float | None
    """None: no figure that day (drawn as a gap)."""


def _x(index: int, total: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * index / (total - 1) if total > 1 else span / 2)


def _y(fraction: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - fraction)


def _frame(title: str, description: str, body: list[str]) -> Markup:
    n = next(_ids)
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-{n}-title chart-{n}-desc" preserveAspectRatio="xMidYMid meet">'
        f'<title id="chart-{n}-title">{escape(title)}</title>'
        f'<desc id="chart-{n}-desc">{escape(description)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _x_labels(labels: Sequence[str]) -> list[str]:
    """The first, middle and last labels: enough to read the axis at phone width."""
    if not labels:
        return []
    shown = sorted({0, len(labels) // 2, len(labels) - 1})
    out = []
    for i in shown:
        anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
        out.append(
            f'<text class="chart-label" x="{_x(i, len(labels)):.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="{anchor}">{escape(labels[i])}</text>'
        )
    return out


def percent_chart(title: str, description: str, points: Sequence[Point]) -> Markup:
    """A line of fractions (0 to 1) over the points, broken where a value is missing, each
    value marked by a dot (one value alone is still visible)."""
    body = []
    for level in (0.0, 0.5, 1.0):
        y = _y(level)
        body.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="chart-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{round(level * 100)}%</text>"
        )
    runs: list[list[str]] = [[]]
    dots = []
    for i, point in enumerate(points):
        if point.value is None:
            runs.append([])
            continue
        x, y = _x(i, len(points)), _y(max(0.0, min(1.0, point.value)))
        runs[-1].append(f"{x:.1f},{y:.1f}")
        dots.append(f'<circle class="chart-dot" cx="{x:.1f}" cy="{y:.1f}" r="3.5"/>')
    for run in runs:
        if len(run) > 1:
            body.append(f'<polyline class="chart-line" points="{" ".join(run)}"/>')
    body += dots
    body += _x_labels([p.label for p in points])
    return _frame(title, description, body)


def bar_chart(title: str, description: str, points: Sequence[Point]) -> Markup:
    """One bar per point, its count written above it (none above an empty day)."""
    top = max((p.value or 0 for p in points), default=0) or 1
    span = (WIDTH - LEFT - RIGHT) / max(1, len(points))
    body = [
        f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_y(0):.1f}" '
        f'y2="{_y(0):.1f}"/>'
    ]
    for i, point in enumerate(points):
        value = point.value or 0
        x = LEFT + i * span + span * 0.15
        y = _y(value / top)
        if value <= 0:
            continue
        body.append(
            f'<rect class="chart-bar" x="{x:.1f}" y="{y:.1f}" width="{span * 0.7:.1f}" '
            f'height="{_y(0) - y:.1f}"/>'
            f'<text class="chart-label" x="{x + span * 0.35:.1f}" y="{y - 4:.1f}" '
            f'text-anchor="middle">{round(value)}</text>'
        )
    labels = [p.label for p in points]
    for i in sorted({0, len(labels) // 2, len(labels) - 1} if labels else set()):
        body.append(
            f'<text class="chart-label" x="{LEFT + (i + 0.5) * span:.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    return _frame(title, description, body)
