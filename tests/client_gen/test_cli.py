"""`python -m client_gen`: writing, and `--check` on stale and current output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from client_gen import cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = "tests.client_gen.fixture:router"


def test_committed_output_is_current() -> None:
    """The files in clients/typescript/src/generated match the application router."""
    result = subprocess.run(
        [sys.executable, "-m", "client_gen", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_write_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--router", FIXTURE, "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "procedures.ts",
        "router.ts",
        "schemas.ts",
    ]
    assert cli.main(["--router", FIXTURE, "--out", str(tmp_path), "--check"]) == 0
    capsys.readouterr()
    # a second write changes nothing
    assert cli.main(["--router", FIXTURE, "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def test_check_reports_stale_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["--router", FIXTURE, "--out", str(tmp_path)])
    schemas = tmp_path / "schemas.ts"
    schemas.write_text(schemas.read_text().replace("widgetId", "widgetID"))
    (tmp_path / "router.ts").unlink()
    assert cli.main(["--router", FIXTURE, "--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "schemas.ts is stale" in err
    assert "-  widgetID: string;" in err
    assert "router.ts is stale:\nmissing" in err
    assert "run `python -m client_gen`" in err


def test_router_spec_must_name_a_router() -> None:
    with pytest.raises(TypeError):
        cli.load_router("tests.client_gen.fixture:Colour")
