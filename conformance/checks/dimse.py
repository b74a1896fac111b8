"""DIMSE (PS3.4, PS3.7) through DCMTK's command-line tools, the reference implementation most
modalities are tested against. Skipped when no ``--dimse HOST:PORT:AET`` is given; a missing
DCMTK when one is given fails, since the operator asked for these checks."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from pydicom import dcmread

from conformance.context import Context, DimseTarget
from conformance.registry import Failure, Skip, check, expect

SERVICE = "dimse"
CALLING = "CONFORMANCE"


def target(context: Context) -> DimseTarget:
    if context.dimse is None:
        raise Skip("no --dimse HOST:PORT:AET given")
    return context.dimse


def run(
    tool: str, target: DimseTarget, *args: str, files: tuple[str, ...] = (), cwd: Path | None = None
) -> str:
    """``tool`` with ``args`` to the target; ``files`` come after the peer (storescu's order)."""
    path = shutil.which(tool)
    if path is None:
        raise Failure(f"DCMTK's {tool} is not on PATH (Debian package dcmtk)")
    command = [
        path,
        "-aet",
        CALLING,
        "-aec",
        target.ae_title,
        *args,
        target.host,
        str(target.port),
        *files,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)
    output = (done.stdout + done.stderr).strip()
    expect(done.returncode == 0, f"{tool} exited {done.returncode}: {output[-500:]}")
    return output


@check(service=SERVICE, name="C-ECHO (Verification)", section="PS3.4 Annex A / PS3.7 §9.1.5")
def echo(context: Context) -> None:
    run("echoscu", target(context))


@check(
    service=SERVICE,
    name="C-STORE an instance, then find it with QIDO-RS",
    section="PS3.4 Annex B (Storage Service Class); PS3.18 §10.6",
)
def store_then_search(context: Context) -> None:
    where = target(context)
    instance = context.corpus.extra_instance("dimse-store")
    with tempfile.TemporaryDirectory(prefix="conformance-") as folder:
        path = Path(folder) / "instance.dcm"
        path.write_bytes(instance.data)
        run("storescu", where, files=(str(path),))
    found = context.client.search_for_instances(search_filters={"SOPInstanceUID": instance.sop_uid})
    expect(len(found) == 1, f"QIDO-RS finds {len(found)} instances stored by C-STORE, expected 1")


@check(
    service=SERVICE,
    name="C-FIND STUDY level by PatientID (Study Root)",
    section="PS3.4 Annex C (C.4.1 C-FIND, C.6.2 Study Root)",
)
def find_study(context: Context) -> None:
    where = target(context)
    context.stored()
    one = context.corpus["utf8"]
    with tempfile.TemporaryDirectory(prefix="conformance-") as folder:
        run(
            "findscu",
            where,
            "-S",
            "-X",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"PatientID={one.dataset.PatientID}",
            "-k",
            "StudyInstanceUID",
            "-k",
            "PatientName",
            cwd=Path(folder),
        )
        answers = [dcmread(p) for p in sorted(Path(folder).glob("rsp*.dcm"))]
    found = [str(ds.StudyInstanceUID) for ds in answers]
    expect(found == [one.study_uid], f"expected [{one.study_uid}], got {found}")
    name = str(answers[0].PatientName)
    expect(
        name == "Müller^Jürgen",
        f"PatientName {name!r} (SpecificCharacterSet {answers[0].get('SpecificCharacterSet')!r})",
    )
