"""docs/design.md is the house plan: its per-package tables list exactly the package's files, each name a row
says the file owns is in that file, and its benchmark list names every benchmark. A drifted page fails here."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = (REPO / "docs" / "design.md").read_text()
PACKAGES = ("conventions", "datamodules", "models", "training", "hpo")


def tables() -> dict[str, dict[str, str]]:
    """Each package's table: file (relative to the package) -> what the row says it owns."""
    out: dict[str, dict[str, str]] = {}
    package = None
    for line in PAGE.splitlines():
        heading = re.match(r"^### `(\w+)`", line)
        if heading:
            package = heading.group(1)
            out[package] = {}
        elif line.startswith("## "):
            package = None
        elif package and (row := re.match(r"^\| `([^`]+)` \| (.*) \|$", line)):
            out[package][row.group(1)] = row.group(2)
    return out


def project_source() -> str:
    return "\n".join(p.read_text() for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_every_package_has_a_table_listing_exactly_its_files():
    found = tables()
    assert set(found) == set(PACKAGES)
    for package, rows in found.items():
        files = {str(p.relative_to(REPO / package)) for p in (REPO / package).rglob("*.py")}
        assert set(rows) == files, (package, sorted(set(rows) ^ files))


def owned_names(text: str) -> list[str]:
    """The code names a row cites: backticked identifiers with a capital or an underscore, or called."""
    names = []
    for token in re.findall(r"`([^`]+)`", text):
        name = re.sub(r"\(.*$", "", token)
        if re.fullmatch(r"[A-Za-z_]\w*", name) and (re.search(r"[A-Z_]", name) or "(" in token):
            names.append(name)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_each_name_a_row_cites_is_in_its_file(package):
    """A name is in the row's file, or (a stage, metric or tag name the row speaks of) quoted somewhere in
    the project's code."""
    source = project_source()
    missing = []
    for file, text in tables()[package].items():
        code = (REPO / package / file).read_text()
        for name in owned_names(text):
            if not re.search(rf"\b{re.escape(name)}\b", code) and f'"{name}"' not in source:
                missing.append(f"{package}/{file}: {name}")
    assert not missing, missing


def test_the_benchmark_list_names_every_benchmark():
    listed = re.search(r"Benchmarks \(`python -m bench\.NAME`\): (.*?)\n\n", PAGE, re.S).group(1)
    names = set(re.findall(r"`(\w+)`", listed))
    benches = {p.stem for p in (REPO / "bench").iterdir()
               if p.suffix in (".py", ".sh") and p.stem != "__init__"}
    assert benches <= names, sorted(benches - names)
