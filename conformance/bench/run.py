"""One benchmark run: the same data into each server, then rounds that alternate servers.

Alternating round by round (A then B, then B then A) spreads the machine's noise (another
process, the page cache, CPU frequency) evenly over both servers, so their ratio means more
than either figure alone. Each figure is taken once per round per server and reported as
the median over rounds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from conformance.bench import figures
from conformance.bench.client import Server, Tally, median, percentile
from conformance.bench.data import CT_100, CT_600, MR_SERIES, MULTIFRAME, Patient, Series
from conformance.bench.figures import BenchError, Figure
from conformance.bench.memory import PeakMemory
from conformance.context import DimseTarget


@dataclass(frozen=True)
class Scale:
    """How much one run stores: ``copies`` of each series over ``patients``, every series
    ``thinned`` to a fraction of its slices. ``check`` is no scale for figures: it runs every
    step against both servers in well under a minute, to check a set-up (and in the suite)."""

    copies: int
    patients: int
    thinned: int = 1


SCALES = {"check": Scale(1, 2, thinned=10), "small": Scale(1, 2), "medium": Scale(10, 20)}


@dataclass
class Target:
    """One server under test and what was measured on it."""

    label: str
    server: Server
    dimse: DimseTarget | None
    memory: PeakMemory
    values: dict[Figure, list[float]] = field(default_factory=dict)

    @classmethod
    def create(cls, label: str, url: str, dimse: str | None) -> Target:
        port = urlsplit(url).port or 80
        return cls(
            label,
            Server(url, Tally()),
            DimseTarget.parse(dimse) if dimse else None,
            PeakMemory(port),
        )

    def record(self, figure: Figure, value: float) -> None:
        self.values.setdefault(figure, []).append(value)

    def result(self, figure: Figure) -> float | None:
        values = self.values.get(figure)
        return median(values) if values else None


@dataclass
class Population:
    """What every server holds before the rounds: the same series, the same UIDs."""

    series: list[Series]
    scale: Scale

    @classmethod
    def make(cls, name: str) -> Population:
        scale = SCALES[name]
        people = [Patient(f"BENCH-{n:03d}", f"Bench^Patient{n:03d}") for n in range(scale.patients)]
        made = []
        for copy in range(scale.copies):
            first = people[(2 * copy) % scale.patients]
            second = people[(2 * copy + 1) % scale.patients]
            date = f"{2015 + copy % 9}0{1 + copy % 9}15"
            for template, patient, description in (
                (CT_100, first, "CT chest"),
                (MR_SERIES, first, "MR brain"),
                (CT_600, second, "CT abdomen"),
                (MULTIFRAME, second, "XA coronary"),
            ):
                thinned = template.thinned(scale.thinned)
                made.append(Series.make(thinned, patient, description=description, date=date))
        return cls(made, scale)

    def fresh(self, patient: Patient, description: str) -> Series:
        """A new copy of the 100-slice CT (thinned as the population is), for a round to store."""
        return Series.make(CT_100.thinned(self.scale.thinned), patient, description=description)

    def of(self, template_name: str) -> list[Series]:
        return [s for s in self.series if s.template.name == template_name]

    def frame_paths(self) -> list[str]:
        """Frames a viewer would scroll through: the CT 600 and the multi-frame instances."""
        return [p for s in self.of(CT_600.name) + self.of(MULTIFRAME.name) for p in s.frame_paths()]

    def queries(self) -> list[str]:
        """Study searches as a study list makes them (PS3.18 §10.6.1, §8.3.4)."""
        patient = self.series[0].patient.patient_id
        study = self.series[0].study_uid
        include = "includefield=00081030&includefield=00080060"
        return [
            f"/studies?limit=101&offset=0&{include}",
            f"/studies?PatientName=Bench%5EPatient00*&{include}",
            f"/studies?PatientID={patient}",
            "/studies?StudyDate=20150101-20191231",
            "/studies?ModalitiesInStudy=CT",
            f"/studies?StudyInstanceUID={study}",
            f"/studies/{study}/series",
        ]


@dataclass
class Plan:
    scale: str
    rounds: int
    qido_requests: int = 200
    frame_requests: int = 1000
    latency_samples: int = 100
    warm_repeats: int = 10


def load(targets: list[Target], population: Population) -> dict[str, float]:
    """Store the population in every server (STOW-RS, 4 at a time), one series at a time
    into each in turn; each server's instances/s is reported, not ranked.

    In turn, so that neither server's files are systematically older: on a machine whose
    memory cannot hold both populations, the files written first are the first to leave the
    page cache, and a server loaded wholly before the other would read more of its studies
    from the disk in the rounds (whole-study retrieval at medium scale)."""
    seconds = dict.fromkeys((t.label for t in targets), 0.0)
    for series in population.series:
        for target in targets:
            seconds[target.label] += len(series.parts) / figures.stow(target.server, [series])
    instances = sum(len(s.parts) for s in population.series)
    return {label: instances / spent for label, spent in seconds.items()}


def warm_up(target: Target, population: Population, plan: Plan) -> None:
    """One pass of each request kind over the population, so neither server's first round
    pays for opening connections, loading code or the first read of its index."""
    figures.qido(target.server, population.queries(), 4, len(population.queries()) * 2)
    figures.frame_latencies(target.server, population.frame_paths(), 20, seed=0)


def one_round(target: Target, population: Population, plan: Plan, number: int, work: Path) -> None:
    """Every figure once on ``target``."""
    patient = Patient(f"BENCH-R{number:02d}", f"Bench^Round{number:02d}")
    fresh = [population.fresh(patient, "CT round") for _ in range(2)]
    step(target, figures.STOW, lambda: figures.stow(target.server, fresh))
    if target.dimse is not None:
        dimse = target.dimse
        sent = population.fresh(patient, "CT round via DIMSE")
        folder = work / f"{target.label}-{number}"
        step(target, figures.CSTORE, lambda: figures.c_store(dimse, sent, folder))
        batch = [population.fresh(patient, "CT round via DIMSE") for _ in range(2)]
        step(
            target,
            figures.CSTORE_4,
            lambda: figures.c_store_parallel(dimse, batch, folder / "parallel"),
        )
    step(target, figures.FIRST_IMAGE, lambda: 1000 * figures.first_image(target.server, fresh[0]))
    step(
        target,
        figures.METADATA_COLD,
        lambda: 1000 * figures.series_metadata(target.server, fresh[1])[0],
    )
    step(
        target,
        figures.METADATA_WARM,
        lambda: (
            1000
            * median(
                [
                    figures.series_metadata(target.server, fresh[1])[0]
                    for _ in range(plan.warm_repeats)
                ]
            )
        ),
    )
    queries = population.queries()
    for concurrency, p50, p95 in (
        (1, figures.QIDO_P50_1, figures.QIDO_P95_1),
        (32, figures.QIDO_P50_32, figures.QIDO_P95_32),
    ):
        try:
            latencies = figures.qido(target.server, queries, concurrency, plan.qido_requests)
        except BenchError as exc:
            target.server.errors.add(str(exc))
            continue
        target.record(p50, 1000 * percentile(latencies, 0.5))
        target.record(p95, 1000 * percentile(latencies, 0.95))
    frames = population.frame_paths()
    step(
        target,
        figures.FRAME_LATENCY,
        lambda: (
            1000
            * median(figures.frame_latencies(target.server, frames, plan.latency_samples, number))
        ),
    )
    step(
        target,
        figures.FRAMES_PER_SECOND,
        lambda: figures.frames_per_second(target.server, frames, plan.frame_requests, number),
    )
    biggest = population.of(CT_600.name)[number % len(population.of(CT_600.name))]
    step(
        target, figures.RETRIEVAL, lambda: figures.study_retrieval(target.server, biggest.study_uid)
    )


def step(target: Target, figure: Figure, measure: Callable[[], float]) -> None:
    """Take one figure; a wrong answer is an error of the server and leaves the figure out."""
    try:
        target.record(figure, measure())
    except BenchError as exc:
        target.server.errors.add(f"{figure.name}: {exc}")


def run(targets: list[Target], plan: Plan, log: Callable[[str], None]) -> None:
    population = Population.make(plan.scale)
    instances = sum(len(s.parts) for s in population.series)
    size = sum(s.nbytes for s in population.series) / 1e6
    log(f"population: {len(population.series)} series, {instances} instances, {size:.0f} MB")
    for target in targets:
        target.memory.start()
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        for label, rate in load(targets, population).items():
            log(f"{label}: population stored at {rate:.0f} instances/s")
        for target in targets:
            warm_up(target, population, plan)
        for number in range(plan.rounds):
            order = targets if number % 2 == 0 else targets[::-1]
            for target in order:
                log(f"round {number + 1}/{plan.rounds}: {target.label}")
                one_round(target, population, plan, number, Path(folder))
    for target in targets:
        peak = target.memory.stop()
        if peak is not None:
            target.record(figures.MEMORY, peak / 1e6)
        target.record(figures.ERRORS, float(target.server.errors.count))
