"""The documentation in the repository: the generated procedure reference is current, every
relative link in docs/ and the READMEs resolves (file and heading), nothing points outside the
repository, and the configuration page names every variable the README does."""

from __future__ import annotations

import re
from pathlib import Path

from client_gen.cli import DOCS_OUT, generate_docs, load_router, stale
from client_gen.docs import slug

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "clients" / "typescript" / "README.md",
    ROOT / "bench" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
# [text](target) outside code; images too. Autolinks and absolute URLs are not checked here.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
OUTSIDE = "../" + "shared"  # a directory beside the repository; split so this file passes
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_the_procedure_reference_is_generated_from_the_current_router() -> None:
    files = generate_docs(load_router("routers.app:app_router"))
    assert stale(DOCS_OUT, files) == {}, "run `python -m client_gen --docs` and commit docs/"


def test_every_relative_link_resolves_to_a_file_and_heading_in_the_repository() -> None:
    checked = 0
    for page in PAGES:
        for target in links(page):
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)} -> {target}"
            assert resolved.is_relative_to(ROOT), f"{where} points outside the repository"
            assert resolved.exists(), f"{where} does not exist"
            if fragment and resolved.suffix == ".md":
                assert fragment in anchors(resolved), f"{where}: no such heading"
            checked += 1
    assert checked > 40


def test_no_file_points_outside_the_repository() -> None:
    for path in ROOT.rglob("*"):
        if any(part in {".git", ".venv", "node_modules", "dist", "data"} for part in path.parts):
            continue
        if path.suffix in {".md", ".py", ".ts", ".json", ".toml", ".mjs"} and path.is_file():
            assert OUTSIDE not in path.read_text(encoding="utf-8", errors="replace"), path


def test_the_configuration_page_names_every_variable_of_the_readme() -> None:
    def variables(page: Path) -> set[str]:
        rows = [line for line in page.read_text().splitlines() if line.startswith("| `")]
        return {
            name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
        }

    readme = variables(ROOT / "README.md")
    assert {"DATABASE_URL", "METRICS_TOKEN", "NODE_ID"} <= readme
    assert readme - variables(ROOT / "docs" / "configuration.md") == set()
