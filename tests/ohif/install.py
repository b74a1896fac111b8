"""The test's JavaScript side, installed by ``make test`` before the tests run (nothing is
downloaded at test time): playwright-core through ``npm ci`` (from package-lock.json), and the
OHIF viewer's prebuilt ``dist/`` from the ``@ohif/app`` package. ``python -m tests.ohif.install``
does it by hand.

Why ``npm pack`` for OHIF rather than a dependency: ``@ohif/app`` declares the whole OHIF
source tree (core, extensions, modes, React, webpack loaders) as dependencies, hundreds of
packages the prebuilt ``dist/`` never needs, some of them not on every registry mirror. So
package.json pins it under ``ohifViewer`` (name, exact version, the tarball's integrity), and
the tarball alone is fetched with npm's own client, checked against that integrity and
unpacked under node_modules (ignored by git, thrown away with it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE_JSON = HERE / "package.json"
LOCKFILE = HERE / "package-lock.json"
NODE_MODULES = HERE / "node_modules"
# npm writes this copy of the lockfile on every install; it goes stale when the lockfile moves.
INSTALLED_LOCK = NODE_MODULES / ".package-lock.json"
VIEWERS = NODE_MODULES / ".ohif"
NPM_TIMEOUT = 300


@dataclass(frozen=True)
class ViewerPackage:
    """The pinned OHIF package: ``name@version`` whose tarball has ``integrity``."""

    name: str
    version: str
    integrity: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def folder(self) -> Path:
        return VIEWERS / f"{self.name.lstrip('@').replace('/', '-')}-{self.version}"


def pinned_viewer() -> ViewerPackage:
    pin = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))["ohifViewer"]
    return ViewerPackage(pin["name"], pin["version"], pin["integrity"])


def npm(*args: str, cwd: Path = HERE) -> str:
    """Runs npm quietly; its output, or an AssertionError carrying npm's own words."""
    done = subprocess.run(
        ["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def node_modules_current() -> bool:
    """npm ci leaves a copy of the lockfile in node_modules: equal means nothing changed."""
    if not INSTALLED_LOCK.is_file():
        return False
    installed = json.loads(INSTALLED_LOCK.read_text(encoding="utf-8"))["packages"]
    wanted = json.loads(LOCKFILE.read_text(encoding="utf-8"))["packages"]
    wanted = {path: entry for path, entry in wanted.items() if path}
    return all(
        installed.get(path, {}).get("integrity") == entry.get("integrity")
        and (HERE / path / "package.json").is_file()
        for path, entry in wanted.items()
    )


def install_node_modules() -> None:
    """``npm ci`` when node_modules is missing or older than the lockfile (npm ci empties
    node_modules first, so the unpacked viewer goes too and is fetched again)."""
    if not node_modules_current():
        npm("ci")


def installed_dist() -> Path | None:
    """The OHIF ``dist/`` folder of the pinned version, if it is installed."""
    dist = pinned_viewer().folder / "dist"
    return dist if (dist / "index.html").is_file() else None


def viewer_dist() -> Path:
    """The OHIF ``dist/`` folder of the pinned version, fetched and unpacked when absent."""
    package = pinned_viewer()
    dist = package.folder / "dist"
    if (dist / "index.html").is_file():
        return dist
    shutil.rmtree(VIEWERS, ignore_errors=True)  # other versions' copies: no longer pinned
    with tempfile.TemporaryDirectory(dir=NODE_MODULES) as scratch:
        tarball = fetch_tarball(package, Path(scratch))
        unpack_dist(tarball, package.folder)
    assert (dist / "index.html").is_file(), f"{package.spec} has no dist/index.html"
    return dist


def fetch_tarball(package: ViewerPackage, into: Path) -> Path:
    """``npm pack`` downloads the registry's tarball as is; its integrity must be the pin."""
    report = json.loads(npm("pack", package.spec, "--json", "--pack-destination", str(into)))
    entry = report[0]
    assert entry["integrity"] == package.integrity, (
        f"{package.spec}: the registry's tarball has integrity {entry['integrity']}, "
        f"package.json pins {package.integrity}"
    )
    return into / str(entry["filename"])


def unpack_dist(tarball: Path, folder: Path) -> None:
    """Unpacks ``package/dist`` only, into a fresh folder renamed into place at the end, so
    an interrupted unpack never looks complete."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
        archive.extractall(partial, members=members, filter="data")
    shutil.rmtree(folder, ignore_errors=True)
    (partial / "package").rename(folder)
    shutil.rmtree(partial)


def main() -> None:
    install_node_modules()
    print(f"OHIF viewer: {viewer_dist()}")


if __name__ == "__main__":
    main()
