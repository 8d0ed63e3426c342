"""Command line: generate the TypeScript files, or check that the committed ones are current."""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from client_gen.collect import collect
from client_gen.docs import render_reference
from client_gen.render import render_all
from rpc.router import Router

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "clients" / "typescript" / "src" / "generated"
DOCS_OUT = ROOT / "docs"
DOCS_FILE = "procedures.md"
DEFAULT_ROUTER = "routers.app:app_router"
DIFF_LINES = 40


def load_router(spec: str) -> Router:
    module_name, _, attribute = spec.partition(":")
    router = getattr(importlib.import_module(module_name), attribute or "app_router")
    if not isinstance(router, Router):
        raise TypeError(f"{spec} is not an rpc.router.Router")
    return router


def generate(router: Router) -> dict[str, str]:
    return render_all(collect(router.procedures.values()))


def generate_docs(router: Router) -> dict[str, str]:
    return {DOCS_FILE: render_reference(router)}


def write(out: Path, files: dict[str, str]) -> list[Path]:
    """Write the files that changed; returns them."""
    out.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for name, text in files.items():
        target = out / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8", newline="\n")
            changed.append(target)
    return changed


def stale(out: Path, files: dict[str, str]) -> dict[str, str]:
    """File name -> a short unified diff, for each file that differs from what would be written."""
    problems: dict[str, str] = {}
    for name, text in files.items():
        target = out / name
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            diff = list(
                difflib.unified_diff(
                    current.splitlines(),
                    text.splitlines(),
                    f"{name} (committed)",
                    f"{name} (generated)",
                    lineterm="",
                )
            )
            shown = diff[:DIFF_LINES]
            if len(diff) > DIFF_LINES:
                shown.append(f"... {len(diff) - DIFF_LINES} more lines")
            problems[name] = "\n".join(shown) if target.exists() else "missing"
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m client_gen",
        description="Generate TypeScript types, a tRPC AppRouter and a procedure table; or, "
        "with --docs, the procedure reference in docs/.",
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    parser.add_argument(
        "--docs", action="store_true", help=f"the Markdown procedure reference ({DOCS_FILE})"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the files in --out are stale"
    )
    parser.add_argument("--router", default=DEFAULT_ROUTER, help="module:attribute of the router")
    args = parser.parse_args(argv)
    router = load_router(args.router)
    files = generate_docs(router) if args.docs else generate(router)
    out: Path = args.out or (DOCS_OUT if args.docs else DEFAULT_OUT)
    command = "python -m client_gen" + (" --docs" if args.docs else "")
    if args.check:
        problems = stale(out, files)
        if not problems:
            print(f"client_gen: {out} is up to date")
            return 0
        for name, detail in sorted(problems.items()):
            print(f"client_gen: {out / name} is stale:\n{detail}\n", file=sys.stderr)
        print(
            f"client_gen: the generated {'reference' if args.docs else 'TypeScript'} no longer "
            f"matches the router; run `{command}` and commit the result.",
            file=sys.stderr,
        )
        return 1
    for path in write(out, files):
        print(f"client_gen: wrote {path}")
    return 0
