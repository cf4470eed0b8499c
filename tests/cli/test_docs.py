"""The user documentation stays true: README.md and docs/*.md against the code.

README is short (under 300 lines); every relative link, and every anchor,
leads somewhere; the quick start shows exactly its two commands; every
command in README's CLI table is a real `jobspool` subcommand; every
top-level key in README's configuration block is accepted by the loader.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobspool.config import load_config

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 300

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (links there are not links)."""
    kept: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            found.add(slug(m.group(2)))
    return found


def section(text: str, title: str) -> str:
    """The body of the level-2 section whose heading starts with title."""
    m = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def test_slug_follows_github() -> None:
    assert slug("How it stays fast with 100,000 jobs") == "how-it-stays-fast-with-100000-jobs"
    assert slug("`/metrics`") == "metrics"
    assert slug("Checking the allow-list: `jobspool check`") == (
        "checking-the-allow-list-jobspool-check"
    )


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines; keep it under 300"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_lead_somewhere(page: Path) -> None:
    broken: list[str] = []
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_quick_start_shows_exactly_its_two_commands() -> None:
    body = section(README.read_text(encoding="utf-8"), "Quick start")
    first = code_blocks(body, "sh")[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["python3 dev.py up", "python3 dev.py test"]


def _subcommands() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "jobspool", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    block = done.stdout.split("positional arguments:", 1)[1].split("options:", 1)[0]
    return {m.group(1) for m in re.finditer(r"^ {4}(\w[\w-]*)", block, re.M)}


def test_cli_table_names_real_commands() -> None:
    body = section(README.read_text(encoding="utf-8"), "The command line")
    named = set(re.findall(r"^\| `jobspool ([\w-]+)", body, re.M))
    assert len(named) >= 10, f"the CLI table names too few commands: {sorted(named)}"
    real = _subcommands()
    assert named <= real, f"not jobspool commands: {sorted(named - real)}"


def test_configuration_keys_are_accepted(tmp_path: Path) -> None:
    body = section(README.read_text(encoding="utf-8"), "Configuration")
    block = code_blocks(body, "yaml")[0]
    data = yaml.safe_load(block)
    assert isinstance(data, dict)
    assert len(data) >= 15, f"README's configuration block lists few keys: {sorted(data)}"
    config = tmp_path / "allowed_jobs.yaml"
    config.write_text(block, encoding="utf-8")
    settings = load_config(config, use_env=False).settings
    assert set(data) <= set(type(settings).model_fields)
