"""scripts/issue_token.py as a developer runs it: the token on stdout verifies against the
development secret the server keeps; production needs JWT_SECRET spelled out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rpc.auth import AuthConfig, verify_token
from server.config import dev_secret

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "issue_token.py"
LONG_SECRET = "an-explicit-secret-0123456789-abcdefgh"


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "ALERTWIRE_"))}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_mints_a_token_the_development_secret_verifies(tmp_path: Path) -> None:
    secret, _ = dev_secret(tmp_path / "data")  # as the server does on its first start
    done = run(
        tmp_path,
        "--sub",
        "charge-7",
        "--role",
        "charge_nurse",
        "--hospital",
        "h1",
        "--hospitals",
        "h2,h3",
        "--ttl",
        "120",
        "--name",
        "Sam Lee",
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert "\n" not in token
    principal = verify_token(token, AuthConfig(secret))
    assert principal.sub == "charge-7"
    assert principal.role == "charge_nurse"
    assert principal.hospitals == {"h1", "h2", "h3"}
    assert principal.name == "Sam Lee"
    assert 100 < principal.expires_at - time.time() <= 121
    assert token not in done.stderr
    assert secret not in done.stdout + done.stderr
    assert "data/dev_jwt_secret" in done.stderr  # says which key signed it


def test_defaults_and_issuer_audience(tmp_path: Path) -> None:
    done = run(tmp_path, JWT_SECRET=LONG_SECRET, JWT_ISSUER="idp", JWT_AUDIENCE="alertwire")
    assert done.returncode == 0, done.stderr
    config = AuthConfig(LONG_SECRET, issuer="idp", audience="alertwire")
    principal = verify_token(done.stdout.strip(), config)
    assert (principal.sub, principal.role, principal.hospitals) == (
        "dev-user",
        "nurse",
        frozenset({"h1"}),
    )


def test_url_puts_the_token_in_the_fragment_of_the_dashboard_address(tmp_path: Path) -> None:
    done = run(tmp_path, "--url", JWT_SECRET=LONG_SECRET, HOST="0.0.0.0", WEBSOCKET_PORT="4010")
    assert done.returncode == 0, done.stderr
    base, _, fragment = done.stdout.strip().partition("#token=")
    assert base == "http://127.0.0.1:4010/"  # a wildcard bind is opened on loopback
    assert verify_token(fragment, AuthConfig(LONG_SECRET)).sub == "dev-user"
    assert fragment not in done.stderr

    given = run(tmp_path, "--url", "https://ward.example.org/", JWT_SECRET=LONG_SECRET)
    assert given.stdout.startswith("https://ward.example.org/#token=ey")


def test_refuses_in_production_unless_jwt_secret_is_given(tmp_path: Path) -> None:
    dev_secret(tmp_path / "data")
    done = run(tmp_path, ALERTWIRE_ENV="production")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "JWT_SECRET" in done.stderr
    done = run(tmp_path, ALERTWIRE_ENV="production", JWT_SECRET=LONG_SECRET)
    assert done.returncode == 0, done.stderr
    assert verify_token(done.stdout.strip(), AuthConfig(LONG_SECRET)).sub == "dev-user"


def test_without_a_secret_it_says_how_to_get_one(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 2
    assert "no development secret" in done.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "args", [["--role", "superuser"], ["--ttl", "0"], ["--ttl", "soon"], ["--hospital", ","]]
)
def test_bad_options_are_refused(tmp_path: Path, args: list[str]) -> None:
    done = run(tmp_path, *args, JWT_SECRET=LONG_SECRET)
    assert done.returncode == 2
    assert done.stdout == ""
