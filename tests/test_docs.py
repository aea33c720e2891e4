"""The documentation stays true: every relative link resolves (file and heading), the row schema in
docs/results.md is the one the code defines, and the README stays a landing page."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.store.row import schema_markdown

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))


def anchors(page: Path) -> set[str]:
    """The heading anchors the repository host makes: lowercase, punctuation dropped, spaces to '-',
    a repeated heading suffixed -1, -2, ..."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.replace("`", ""))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def links(page: Path) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())) if not re.match(r"^[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_anchors_follow_the_hosts_rules(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Leaderboard: CIFAR-10, quick preset\n## `dh` and `dh-8`\n```\n# not a heading\n```\n## FAQ\n## FAQ\n")
    assert anchors(page) == {"leaderboard-cifar-10-quick-preset", "dh-and-dh-8", "faq", "faq-1"}


def test_the_documented_row_schema_is_the_codes():
    text = (ROOT / "docs" / "results.md").read_text()
    documented = text.split("<!-- schema:start -->\n", 1)[1].split("<!-- schema:end -->", 1)[0]
    assert documented.strip() == schema_markdown(), "regenerate it with benchmark.store.row.schema_markdown()"


def test_the_readme_is_a_landing_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"


def test_the_quickstart_explains_every_run_option():
    import argparse

    from benchmark.cli import build_parser

    parser = build_parser()
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    text = (ROOT / "docs" / "quickstart.md").read_text()
    missing = [flag for a in run._actions for flag in a.option_strings[:1]
               if flag.startswith("--") and flag != "--help" and f"`{flag}" not in text]
    assert missing == []


def test_the_architecture_page_names_every_engine_and_tool_module_and_no_gone_one():
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "benchmark").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and "models" not in p.parts}
    named = set(re.findall(r"`(benchmark/[\w/]+\.py)`", text))
    folders = set(re.findall(r"^\| `(benchmark/[\w/]+/)` \|", text, re.M))  # a package described in one line
    unnamed = {m for m in modules - named if not any(m.startswith(f) for f in folders)}
    assert sorted(unnamed) == [], "add a line for each to docs/architecture.md"
    assert sorted(named - modules) == [], "docs/architecture.md names modules that no longer exist"


def test_a_module_over_300_lines_is_named_with_its_reason_on_the_architecture_page():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("### Modules over 300 lines", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`((?:benchmark|methods|countermeasures)/[\w/]+\.py)` \((\d+)", section))
    long = {(p.relative_to(ROOT).as_posix(), str(len(p.read_text().splitlines())))
            for folder in ("benchmark", "methods", "countermeasures") for p in (ROOT / folder).rglob("*.py")
            if len(p.read_text().splitlines()) > 300}
    assert long == named, "each module over 300 lines appears there with its current length and its reason"


def test_every_engine_module_has_a_test_file_of_its_own():
    engine = {p.stem for p in (ROOT / "benchmark" / "engine").glob("*.py") if p.name != "__init__.py"}
    lacking = sorted(m for m in engine if not (ROOT / "tests" / f"test_{m}.py").is_file())
    assert lacking == [], f"add tests/test_NAME.py for benchmark/engine/NAME.py: {lacking}"
