"""The users of the load test, for Locust: viewers and residents, each with think time.

Run by ``python -m tests.benchmarks.load`` (which starts Locust headless and reads its
figures); Locust can also run this file by itself against any server:

    locust -f tests/benchmarks/load/locustfile.py --host http://127.0.0.1:8080 ViewerUser

Settings come from the environment, so one file serves any server:

* ``LOAD_DICOMWEB_ROOT``: the DICOMweb root's path (``/dicomweb`` here, ``/dicom-web`` on
  Orthanc);
* ``LOAD_TOKEN``: a bearer token for the viewers when the server wants one;
* ``LOAD_LEARNERS`` and ``LOAD_PASSWORD``: the residents' user names (comma-separated) and
  their password, for :class:`LearnerUser` (this server's web app only).

A viewer does what OHIF v3 does when a radiologist opens a study from the study list (the
same query strings): the study list (QIDO-RS, PS3.18 §10.6), the study's series, every
series' metadata (WADO-RS, §10.4.1.1.2), then scrolls through the largest series one image
at a time (frames, §10.4.1.1.4). A resident goes through the web app: Today, a review
session, each question page with its images, an answer, the feedback, then Progress.
Each action is followed by a think time of 0.5 to 3.5 s; requests a page or a viewer makes
at once (the series metadata, a question's images) are made back to back.

Every request has a name by kind (``QIDO studies``, ``frame`` ...), so that Locust reports
p50/p95/p99 per kind; an answer other than the expected status is a failure, with its reason.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable
from html import unescape
from itertools import cycle
from typing import Any

from locust import FastHttpUser, between, task

try:
    from tests.benchmarks.load.viewing import DICOM_JSON, FRAME_ACCEPT, STUDY_LIST
except ImportError:  # Locust started elsewhere than the repository: this folder is on the path
    from viewing import DICOM_JSON, FRAME_ACCEPT, STUDY_LIST  # type: ignore[no-redef]

ROOT = os.environ.get("LOAD_DICOMWEB_ROOT", "/dicomweb").rstrip("/")
TOKEN = os.environ.get("LOAD_TOKEN", "")
LEARNERS = cycle([name for name in os.environ.get("LOAD_LEARNERS", "").split(",") if name])
PASSWORD = os.environ.get("LOAD_PASSWORD", "")

SCROLLS = 12
"""Scroll actions per opened study: each shows the next image, one to five slices on."""
IMAGES_PER_QUESTION = 20
"""Frames a question page's viewer loads (the whole stack of the test department's CT)."""


def _value(element: dict[str, Any], tag: str) -> Any:
    values = element.get(tag, {}).get("Value") or [None]
    return values[0]


RECEIVE_BLOCK = 256 * 1024


def _large_reads(user: FastHttpUser) -> None:
    """Makes the user's connections read the socket 256 KB at a time, as a browser does,
    instead of geventhttpclient's 4 KB: a 512 KB frame otherwise takes 128 reads, each fed
    to the HTTP parser in Python, and the client spends the shared CPU that the server
    under test needs (set before the first request, when the pool has made no connection)."""
    user.client.client.clientpool.client_args["block_size"] = RECEIVE_BLOCK


Parser = Callable[[str, bytes], list[Any]]


def _json_list(_path: str, body: bytes) -> list[dict[str, Any]]:
    """A JSON array answer. Parsed from the bytes: Locust's ``.text`` and ``.json()`` guess
    the charset of a body whose media type names none (``application/dicom+json``) by
    scanning all of it, which for a 1 MB metadata answer takes long enough to stall every
    other simulated user of the process, and shows as their latency."""
    found = json.loads(body)
    return found if isinstance(found, list) else []


_STACKS: dict[str, list[tuple[str, int]]] = {}


def _stack(path: str, body: bytes) -> list[tuple[str, int]]:
    """The (SOP Instance UID, frame) images of a series' metadata, in instance number order.

    Worked out once per series and process: a viewer decodes metadata on its own CPU, while
    here every simulated viewer shares one Python process with all the others, and decoding
    the same megabyte of JSON for each of them would stall them all (the archive does not
    change during a run). The request itself is made, and timed, every time."""
    if path not in _STACKS:
        metadata = _json_list(path, body)
        _STACKS[path] = [
            (_value(instance, "00080018"), frame)
            for instance in sorted(metadata, key=lambda element: _value(element, "00200013") or 0)
            for frame in range(1, int(_value(instance, "00280008") or 1) + 1)
        ]
    return _STACKS[path]


class ViewerUser(FastHttpUser):  # type: ignore[misc]
    """A radiologist at an OHIF viewer: opens studies from the list and scrolls through them."""

    wait_time = between(0.5, 3.5)

    def on_start(self) -> None:
        _large_reads(self)
        self.headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
        self.wait()  # arrivals spread out, not all at the instant Locust starts the user

    def _json(self, path: str, name: str, parse: Parser | None = None) -> list[dict[str, Any]]:
        with self.client.get(
            ROOT + path,
            name=name,
            headers={**self.headers, "Accept": DICOM_JSON},
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"status {answer.status_code}")
                return []
            if parse is None:
                parse = _json_list
            try:
                found = parse(path, answer.content)
            except ValueError:
                answer.failure("not JSON")
                return []
            return found

    @task
    def open_a_study(self) -> None:
        studies = self._json(STUDY_LIST, "QIDO studies")
        if not studies:
            return
        study = _value(random.choice(studies), "0020000D")
        self.wait()
        series = self._json(f"/studies/{study}/series", "QIDO series")
        stacks = []
        for one in series:
            uid = _value(one, "0020000E")
            path = f"/studies/{study}/series/{uid}/metadata"
            stacks.append((uid, self._json(path, "series metadata", _stack)))
        if not stacks:
            return
        uid, frames = max(stacks, key=lambda stack: len(stack[1]))
        position = random.randrange(len(frames))
        for _ in range(SCROLLS):
            self.wait()
            sop, frame = frames[position % len(frames)]
            self._frame(f"/studies/{study}/series/{uid}/instances/{sop}/frames/{frame}")
            position += random.randint(1, 5)

    def _frame(self, path: str) -> None:
        with self.client.get(
            ROOT + path,
            name="frame",
            headers={**self.headers, "Accept": FRAME_ACCEPT},
            catch_response=True,
        ) as answer:
            if answer.status_code != 200 or not answer.content:
                answer.failure(f"status {answer.status_code}")


CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]*)"')
MANIFEST = re.compile(
    r'<script type="application/json" class="stack-manifest">(.*?)</script>', re.S
)
NEXT = re.compile(r'href="(/sessions/[^"/]+/items/\d+)"')
OPTION = re.compile(r'name="option" value="([^"]+)"')
KIND = re.compile(r'name="kind" value="([a-z_]+)"')


class LearnerUser(FastHttpUser):  # type: ignore[misc]
    """A resident in the web app: signs in, reviews what is due (or practises CT cases when
    nothing is), looks at each question's images, answers, reads the feedback, checks
    progress."""

    wait_time = between(0.5, 3.5)
    fixed_count = int(os.environ.get("LOAD_LEARNER_SESSIONS", "0"))

    def on_start(self) -> None:
        _large_reads(self)
        self.origin = {"Origin": self.host.rstrip("/")}
        self.wait()  # arrivals spread out, as for the viewers
        with self.client.post(
            "/login",
            data={"username": next(LEARNERS), "password": PASSWORD, "next": "/", "csrf": ""},
            headers=self.origin,
            name="sign in",
            allow_redirects=False,
            catch_response=True,
        ) as answer:
            if answer.status_code != 303:
                answer.failure(f"status {answer.status_code}")

    def _page(self, path: str, name: str) -> str:
        with self.client.get(path, name=name, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"status {answer.status_code}")
                return ""
            return answer.text or ""

    def _post(self, path: str, data: dict[str, str], name: str) -> str | None:
        """The page a form's 303 leads to, or None."""
        with self.client.post(
            path,
            data=data,
            headers=self.origin,
            name=name,
            allow_redirects=False,
            catch_response=True,
        ) as answer:
            if answer.status_code != 303:
                answer.failure(f"status {answer.status_code}")
                return None
            return str(answer.headers.get("location", ""))

    @task
    def review(self) -> None:
        today = self._page("/", "today")
        token = CSRF.search(today)
        if token is None:
            return
        self.wait()
        form = {"source": "due", "csrf": token.group(1)}
        if 'name="source" value="due"' not in today:  # done for today: practise CT cases
            form = {"source": "tags", "filter": "modality:CT", "csrf": token.group(1)}
        item = self._post("/review", form, "start review")
        while item and item.startswith("/sessions/"):
            item = self._question(item)
        self.wait()
        self._page("/progress", "progress")

    def _question(self, item: str) -> str | None:
        """Answers the question at ``item``; the next question's path, if any."""
        page = self._page(item, "question")
        token, kind = CSRF.search(page), KIND.search(page)
        if token is None or kind is None:
            return None
        target = self._images(page)
        self.wait()
        answer = {"csrf": token.group(1), "kind": kind.group(1)}
        if kind.group(1) == "multiple_choice":
            answer["option"] = random.choice(OPTION.findall(page) or ["a"])
        elif kind.group(1) == "free_text":
            answer["text"] = random.choice(["nodule", "mass", "pneumonia"])
        elif target is not None:
            answer |= target
        feedback_at = self._post(f"{item}/answer", answer, "answer")
        if feedback_at is None:
            return None
        feedback = self._page(feedback_at, "feedback")
        self.wait()
        following = NEXT.search(feedback)
        return following.group(1) if following else None

    def _images(self, page: str) -> dict[str, str] | None:
        """Loads the stack as the page's viewer does; a point on its middle image for a
        locate question."""
        found = MANIFEST.search(page)
        if found is None:
            return None
        manifest = json.loads(unescape(found.group(1)))
        root, study = manifest["root"], manifest["study"]
        series = manifest["series"][0]
        images = series["images"][:IMAGES_PER_QUESTION]
        for image in images:
            with self.client.get(
                f"{root}/studies/{study}/series/{series['uid']}/instances/{image['sop']}/frames/1",
                name="learner frame",
                headers={"Accept": FRAME_ACCEPT},
                catch_response=True,
            ) as answer:
                if answer.status_code != 200:
                    answer.failure(f"status {answer.status_code}")
        middle = images[len(images) // 2]
        return {
            "sop": middle["sop"],
            "frame": "1",
            "x": str(middle["columns"] // 2),
            "y": str(middle["rows"] // 2),
        }
