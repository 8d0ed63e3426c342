"""Mint a development token for Alertwire.

    python scripts/issue_token.py --sub nurse-1 --role nurse --hospital h1 --ttl 3600
    python scripts/issue_token.py --role charge_nurse --url    # a dashboard sign-in link

Signs with JWT_SECRET, or else with the development secret the server keeps in
`data/dev_jwt_secret` (ALERTWIRE_DATA_DIR), so run it from the directory the server runs in.
JWT_ISSUER and JWT_AUDIENCE are added when set. With ALERTWIRE_ENV=production it refuses unless
JWT_SECRET is given explicitly. The token goes to stdout alone (TOKEN=$(...)); a summary of
its claims, never the token or the key, goes to stderr. With --url, stdout is instead the
dashboard's address with the token in the fragment (`#token=...`): browsers never send a
fragment to the server, and the page takes it out of the address bar at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rpc.auth import issue_token  # noqa: E402
from rpc.context import ROLES  # noqa: E402
from server.config import ConfigError, minting_auth  # noqa: E402

MAX_TTL_S = 30 * 24 * 3600


def _ttl(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number of seconds") from None
    if not 0 < value <= MAX_TTL_S:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_TTL_S} seconds")
    return value


def _hospitals(raw: str) -> list[str]:
    ids = [h.strip() for h in raw.split(",") if h.strip()]
    if not ids or any(len(h) > 64 for h in ids):
        raise argparse.ArgumentTypeError("hospital ids of 1 to 64 characters")
    return ids


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Mint a development JWT for Alertwire.")
    parser.add_argument("--sub", default="dev-user", help="subject: staff or service id")
    parser.add_argument("--role", default="nurse", choices=sorted(ROLES))
    parser.add_argument(
        "--hospital",
        "--hospitals",
        dest="hospitals",
        type=_hospitals,
        action="append",
        default=[],
        help="hospital id(s) the token grants; repeat or give a comma list (default h1)",
    )
    parser.add_argument("--ttl", type=_ttl, default=3600, help="lifetime in seconds")
    parser.add_argument("--name", default=None, help="display name (optional)")
    parser.add_argument(
        "--url",
        nargs="?",
        const="",
        default=None,
        metavar="BASE",
        help="print a dashboard sign-in link instead of the bare token; BASE defaults to "
        "http://HOST:WEBSOCKET_PORT/ from the environment (127.0.0.1:3001)",
    )
    return parser.parse_args(argv)


def dashboard_url(base: str, token: str) -> str:
    """The dashboard at `base` (or the local server's address) with the token in the fragment."""
    if not base:
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("WEBSOCKET_PORT", "3001")
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    return f"{base.split('#', 1)[0]}#token={quote(token, safe='')}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hospitals = sorted({h for group in args.hospitals for h in group}) or ["h1"]
    try:
        config, source = minting_auth()
    except ConfigError as exc:
        print(f"issue_token: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    jti = uuid.uuid4().hex  # lets an admin revoke this one token (admin.revokeTokens)
    token = issue_token(
        config,
        sub=args.sub,
        role=args.role,
        hospitals=hospitals,
        ttl_seconds=args.ttl,
        now=now,
        name=args.name,
        jti=jti,
    )
    expires = datetime.fromtimestamp(int(now + args.ttl), tz=UTC).isoformat()
    print(
        f"token for sub={args.sub} role={args.role} hospitals={','.join(hospitals)}, "
        f"expires {expires}, jti {jti}, signed with the key from {source}",
        file=sys.stderr,
    )
    print(token if args.url is None else dashboard_url(args.url, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
