"""Run the real start script as a child process on a free port, for integration tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "scripts" / "start_websocket_server.py"
LISTEN = re.compile(r"listening on http://([^:]+):(\d+)")


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    port: int
    banner: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/trpc"

    signalled: bool = False

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        self.signalled = True
        self.proc.send_signal(sig)

    async def stop(self, sig: int = signal.SIGTERM, wait_s: float = 10.0) -> int:
        """Signal once (unless already done) and wait for the exit code."""
        if self.proc.returncode is None and not self.signalled:
            self.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), wait_s)


async def start_server(cwd: Path, **env: str) -> ServerProcess:
    environment = {**os.environ, "WEBSOCKET_PORT": "0", "LOG_LEVEL": "WARNING", **env}
    environment.pop("JWT_SECRET", None) if "JWT_SECRET" not in env else None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(START),
        cwd=cwd,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = LISTEN.search(line)
    if match is None:
        err = b""
        if proc.stderr is not None:
            err = await proc.stderr.read()
        raise RuntimeError(f"server did not start: {line!r} {err.decode()[-2000:]}")
    return ServerProcess(proc, int(match.group(2)), line)
