"""The docs stay true: every Python block of the README and docs/ runs, every `autoquant`
command in them parses, and docs/cli.md is what the parser says."""

import re
import runpy
import shlex
from pathlib import Path

import pytest

from autoquant.cli import build_parser, reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        pattern = rf"^```{language}\n(.*?)^```"
        for match in re.finditer(pattern, path.read_text(), flags=re.M | re.S):
            line = path.read_text()[: match.start()].count("\n") + 1
            found.append((f"{path.name}:{line}", match.group(1)))
    return found


@pytest.mark.parametrize("where,code", blocks("python"), ids=lambda v: v if ":" in v else "")
def test_every_python_block_runs(where, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks write their outputs (stores, saved models) here
    script = tmp_path / "block.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")


def commands() -> list[tuple[str, list[str]]]:
    found = []
    for where, code in blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("autoquant "):
                found.append((where, shlex.split(line)[1:]))
    return found


def test_every_autoquant_command_in_the_docs_parses():
    parser = build_parser()
    assert len(commands()) > 10
    for where, argv in commands():
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: `autoquant {' '.join(argv)}` does not parse")


def test_the_cli_reference_is_what_the_parser_says():
    assert (ROOT / "docs" / "cli.md").read_text() == reference(), "run `make docs`"


def test_readme_is_short_and_its_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for path in DOCS:
        for link in re.findall(r"\]\(([^)#]+\.(?:md|png))\)", path.read_text()):
            assert (path.parent / link).exists(), f"{path.name} links to {link}"


def test_every_mlflow_name_autoquant_writes_is_documented():
    from autoquant.tracking.record import RUN_TAGS, TRIAL_RUN_METRICS

    text = (ROOT / "docs" / "mlflow.md").read_text()
    missing = [f"autoquant.{t}" for t in RUN_TAGS if f"`autoquant.{t}`" not in text]
    missing += [m for m in TRIAL_RUN_METRICS if f"`{m}`" not in text]
    assert not missing, f"docs/mlflow.md does not list {missing}"
