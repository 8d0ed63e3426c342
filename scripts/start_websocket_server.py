"""Start Alertwire: `python scripts/start_websocket_server.py` (environment: CONTRACT section 1)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import config as server_config  # noqa: E402
from server import logs  # noqa: E402
from server.main import run  # noqa: E402
from services import faults  # noqa: E402


def main() -> int:
    try:
        logs.setup(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "json"))
    except ValueError as exc:
        print(f"alertwire: cannot start: {exc}", file=sys.stderr)
        return 2
    faults.arm(os.environ)  # test aids only (services/faults.py); inert when unset
    try:
        config = server_config.load()
    except server_config.ConfigError as exc:
        print(f"alertwire: cannot start: {exc}", file=sys.stderr)
        return 2
    logs.set_node(config.cluster.node_id)
    try:
        import uvloop
    except ImportError:  # optional (the `fast` extra): the standard loop serves as well
        return asyncio.run(run(config))
    return uvloop.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
