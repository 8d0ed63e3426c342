"""The TypeScript examples in the READMEs are exactly the files that `tsc --strict` compiles.

A fenced block right after `<!-- compiled as PATH -->` must equal PATH (relative to the README),
and PATH must be listed in clients/typescript/typecheck/tsconfig.json, which the Node tests
compile (tests/integration/test_node_client.py). So an example that stops compiling fails
those tests, and one edited only in a README fails here. No Node needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
TYPECHECK = PACKAGE / "typecheck"
READMES = [ROOT / "README.md", PACKAGE / "README.md"]
EXAMPLE = re.compile(r"<!-- compiled as (?P<path>\S+) -->\n```ts\n(?P<code>.*?)```", re.DOTALL)
EXAMPLES = {"readme-trpc.ts", "readme-react-hook.ts", "readme-presence.ts", "readme-vitals.ts"}


def compiled() -> set[Path]:
    config = json.loads((TYPECHECK / "tsconfig.json").read_text(encoding="utf-8"))
    return {(TYPECHECK / name).resolve() for name in config["files"]}


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_are_the_compiled_files(readme: Path) -> None:
    found = {
        (readme.parent / match["path"]).resolve(): match["code"]
        for match in EXAMPLE.finditer(readme.read_text(encoding="utf-8"))
    }
    assert {path.name for path in found} == EXAMPLES
    for path, code in found.items():
        assert path in compiled(), f"{path} is not in typecheck/tsconfig.json"
        assert code == path.read_text(encoding="utf-8"), (
            f"the example in {readme.relative_to(ROOT)} differs from {path.relative_to(ROOT)}; "
            "change both"
        )


def test_every_typecheck_file_is_compiled() -> None:
    on_disk = {path.resolve() for path in TYPECHECK.glob("*.ts")}
    missing = sorted(p.name for p in on_disk - compiled())
    assert not missing, f"add {missing} to typecheck/tsconfig.json"
