"""A simulated learner answers their due reviews for 90 simulated days (the server's clock is
injected, nothing sleeps); the review log, the progress figures, the CSV export and the xAPI
statements must all agree with the answers the learner gave."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from radcase_pacs.settings import Settings
from tests.teaching.learning_world import (
    START,
    World,
    add_case,
    add_question,
    answer_for,
    free_text,
    locate,
    multiple_choice,
    world,
)

DAYS = 90
FAST_SECONDS = 20
CASES = [  # (title, tags, chance of answering right)
    ("Chest", {"categories": ["TCE302"], "modalities": ["CT"], "level": "TCE201"}, 0.9),
    ("Brain", {"categories": ["TCE306"], "modalities": ["MR"], "level": "TCE203"}, 0.6),
    ("Knee", {"categories": ["TCE301"], "modalities": ["MR", "CR"], "level": "TCE202"}, 0.8),
]


@dataclass(frozen=True)
class Given:
    """One answer as the simulated learner gave it."""

    question_id: str
    case: int
    at: datetime
    correct: bool
    duration_ms: int
    hinted: bool

    @property
    def rating(self) -> str:
        if not self.correct:
            return "again"
        return "easy" if not self.hinted and self.duration_ms <= FAST_SECONDS * 1000 else "good"


def all_pages(w: World, url: str, key: str) -> list[Any]:
    out: list[Any] = []
    while True:
        page = w.ok("ann", "GET", f"{url}?limit=200&offset={len(out)}")
        out += page[key]
        if len(out) >= page["total"]:
            return out


def simulate(w: World, rng: random.Random) -> tuple[list[Given], set[date]]:
    questions: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, (title, tags, _) in enumerate(CASES):
        case = add_case(w, title=title, diagnosis=f"{title} diagnosis", tags=tags)
        for body in (multiple_choice(), free_text(), locate(case)):
            question = add_question(w, case, body)
            questions[question["id"]] = (index, question)
    w.ok(
        "edu",
        "PUT",
        "/api/program",
        json={"new_per_day": 2, "reviews_per_day": 100, "fast_answer_seconds": FAST_SECONDS},
    )
    given: list[Given] = []
    active: set[date] = set()
    for day in range(DAYS):
        if rng.random() < 0.1:  # a day off now and then
            continue
        w.clock.now = START + timedelta(days=day)
        for _ in range(6):  # the day's rounds: learning steps come back within minutes
            session = w.ok("ann", "POST", "/api/quiz/sessions", 201, json={"source": "due"})
            if not session["items"]:
                break
            for item in session["items"]:
                url = f"/api/quiz/sessions/{session['id']}/items/{item['position']}"
                w.ok("ann", "GET", url)
                case_index, question = questions[item["question_id"]]
                hinted = bool(question["hint"]) and rng.random() < 0.3
                if hinted:
                    w.ok("ann", "POST", url + "/hint")
                seconds = rng.choice([4, 12, 19, 25, 60])
                w.clock.advance(seconds=seconds)
                correct = rng.random() < CASES[case_index][2]
                result = w.ok("ann", "POST", url + "/answer", json=answer_for(question, correct))
                given.append(
                    Given(question["id"], case_index, w.clock.now, correct, seconds * 1000, hinted)
                )
                assert result["rating"] == given[-1].rating
                active.add(w.clock.now.date())
            w.clock.advance(minutes=15)
    return given, active


def streaks(days: set[date], today: date) -> tuple[int, int]:
    longest = run = 0
    previous = None
    for day in sorted(days):
        run = run + 1 if previous and day - previous == timedelta(days=1) else 1
        longest, previous = max(longest, run), day
    current = run if previous and today - previous <= timedelta(days=1) else 0
    return current, longest


@pytest.mark.parametrize("seed", [11])
def test_ninety_days_of_reviews(server_settings: Settings, seed: int) -> None:
    rng = random.Random(seed)
    with world(server_settings) as w:
        # FSRS fuzzes review intervals with the random module, which the database pools also
        # draw from for each connection they open: seeded once the deployment is open, so
        # that how many connections it opens does not decide the run.
        random.seed(seed)
        given, active = simulate(w, rng)
        # The run covers what it should: months of answers, every rating, hints.
        assert len(given) >= 45 and given[-1].at - given[0].at > timedelta(days=60)
        assert {g.rating for g in given} == {"again", "good", "easy"}
        assert any(g.hinted for g in given)
        log = all_pages(w, "/api/progress/history", "reviews")

        # The log is the answers given, in order, with their ratings and durations.
        assert len(log) == len(given)
        for entry, g in zip(log, given, strict=True):
            assert entry["question_id"] == g.question_id
            assert datetime.fromisoformat(entry["reviewed_at"]) == g.at
            assert (entry["correct"], entry["rating"]) == (g.correct, g.rating)
            assert (entry["duration_ms"], entry["hinted"]) == (g.duration_ms, g.hinted)
        assert "hard" not in {e["rating"] for e in log}

        # Each card's states chain: a review starts from the state the previous one left.
        last: dict[str, dict[str, Any]] = {}
        for entry in log:
            assert entry["state_before"] == last.get(entry["question_id"])
            after = entry["state_after"]
            assert after["last_review"] == entry["reviewed_at"].replace("Z", "+00:00")
            if entry["rating"] == "again":
                assert after["state"] in ("learning", "relearning")
            last[entry["question_id"]] = after
        # Every card was met: two new ones a day, nine questions.
        assert len(last) == 9
        # Cards answered right again and again end with long intervals.
        reviewed = [s for s in last.values() if s["state"] == "review"]
        assert any(
            datetime.fromisoformat(s["due"]) - datetime.fromisoformat(s["last_review"])
            > timedelta(days=14)
            for s in reviewed
        )

        # The figures are the log's figures.
        progress = w.ok("ann", "GET", "/api/progress")
        overall = progress["overall"]
        assert overall["reviews"] == len(given)
        assert overall["correct"] == sum(g.correct for g in given)
        assert overall["accuracy"] == pytest.approx(overall["correct"] / len(given))
        assert overall["cards"] == 9 and 0 < overall["retention"] <= 1
        now = w.clock.now
        due_now = sum(1 for s in last.values() if datetime.fromisoformat(s["due"]) <= now)
        assert overall["due_now"] == due_now
        for dimension, values_of in (
            ("by_category", lambda tags: tags.get("categories", [])),
            ("by_modality", lambda tags: tags.get("modalities", [])),
            ("by_level", lambda tags: [tags["level"]]),
        ):
            expected_reviews: Counter[str] = Counter()
            expected_correct: Counter[str] = Counter()
            for g in given:
                for value in values_of(CASES[g.case][1]):
                    expected_reviews[value] += 1
                    expected_correct[value] += int(g.correct)
            got = {t["key"]: t for t in progress[dimension]}
            assert {k: t["reviews"] for k, t in got.items()} == dict(expected_reviews)
            assert {k: t["correct"] for k, t in got.items()} == dict(expected_correct)
        current, longest = streaks(active, now.date())
        assert progress["streak"] == {
            "current": current,
            "longest": longest,
            "active_days": len(active),
        }

        rows = list(csv.DictReader(io.StringIO(w.call("ann", "GET", "/api/progress.csv").text)))
        assert [r["rating"] for r in rows] == [g.rating for g in given]
        statements = []
        url = "/api/xapi/statements?limit=200"
        while url:
            page = w.client.get(url, headers=w.as_("ann")).json()
            statements += page["statements"]
            url = page["more"]
        assert len(statements) == 2 * len(given)
        verdicts = [s["verb"]["display"]["en-US"] for s in statements[1::2]]
        assert verdicts == ["passed" if g.correct else "failed" for g in given]
