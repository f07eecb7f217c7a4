"""Packaging: the wheel built from this checkout holds the five packages and nothing else, pins torch, and
has pytest and ruff only as the `dev` extra."""

import email.parser
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("conventions", "datamodules", "models", "training", "hpo")
PROJECT_FILES = ("pyproject.toml", "README.md", "setup.py", "setup.cfg", "MANIFEST.in")


def _require_build_backend() -> None:
    """The build runs offline with this environment's setuptools (torch requires a recent one)."""
    for text in tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]:
        req = Requirement(text)
        try:
            found = version(req.name)
        except PackageNotFoundError:
            found = None
        if found is None or not req.specifier.contains(found, prereleases=True):
            pytest.fail(f"building the wheel offline needs {text} in this environment, found {found}")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, zipfile.ZipFile]:
    """(source copy, wheel). The wheel is built from a copy of the checkout's project files and of every
    top-level directory with an `__init__.py` (the five packages, tests/, bench/), so that the build's
    build/ and *.egg-info land there and never in the repository or a stale build/ of it."""
    _require_build_backend()
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for item in sorted(REPO.iterdir()):
        if item.is_file() and item.name in PROJECT_FILES:
            shutil.copy2(item, src / item.name)
        elif item.is_dir() and (item / "__init__.py").is_file():
            shutil.copytree(item, src / item.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as wheel:
        yield src, wheel


def _metadata(wheel: zipfile.ZipFile):
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(name).decode())


def test_wheel_holds_the_five_packages_and_nothing_else(built):
    src, wheel = built
    names = set(wheel.namelist())
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == set(PACKAGES)
    for package in PACKAGES:
        sources = {p.relative_to(src).as_posix() for p in (src / package).rglob("*.py")}
        assert f"{package}/__init__.py" in sources
        assert sources <= names, sorted(sources - names)  # every module, subpackages included
    assert {"models/backbones/__init__.py", "models/backbones/itransformer.py", "hpo/__main__.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_pytest_and_ruff_are_only_a_dev_extra(built):
    meta = _metadata(built[1])
    assert "dev" in meta.get_all("Provides-Extra", [])
    requirements = [Requirement(text) for text in meta.get_all("Requires-Dist", [])]
    plain = {r.name.lower(): r for r in requirements if r.marker is None}
    dev = {r.name.lower() for r in requirements
           if r.marker is not None and r.marker.evaluate({"extra": "dev"}) and not r.marker.evaluate({"extra": ""})}
    for tool in ("pytest", "ruff"):
        assert tool in dev, f"{tool} is not in the dev extra"
        assert tool not in plain, f"{tool} is a runtime requirement: {plain[tool]}"
    assert str(plain["torch"].specifier) == "==2.13.0"  # the local CPU build; unpinned pulls CUDA
