"""nginx in front of test nodes, configured from the repository's deploy/nginx.conf with only
its ports changed (so the tests exercise the configuration users run), in the foreground, with
its pid, logs and temporary files under the test's own directory.

Without nginx the tests that need it skip with the reason; in CI (CI=true) they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.integration.server import ROOT
from tests.needs import missing
from tests.polling import until
from tests.redis_support import free_port

CONFIG = ROOT / "deploy" / "nginx.conf"
UPSTREAM = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+;\n", re.MULTILINE)
LISTEN = re.compile(r"listen 127\.0\.0\.1:\d+;")
STOP_S = 10.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        missing("nginx is not installed (Debian: apt-get install nginx)")
    return found


def configure(text: str, listen_port: int, node_ports: Sequence[int]) -> str:
    """deploy/nginx.conf with the test's ports: the listen port and one upstream server line
    per node in place of the shipped three."""
    match = UPSTREAM.search(text)
    assert match is not None, "deploy/nginx.conf has no upstream server line"
    assert LISTEN.search(text), "deploy/nginx.conf has no listen line"
    servers = "".join(f"{match.group(1)}server 127.0.0.1:{port};\n" for port in node_ports)
    text = UPSTREAM.sub("", text)
    text = text[: match.start()] + servers + text[match.start() :]
    text = LISTEN.sub(f"listen 127.0.0.1:{listen_port};", text)
    if os.geteuid() == 0:
        # As root the workers would switch to `nobody`, who cannot enter the test's directory.
        text = "user root;\n" + text
    return text


@dataclass
class Nginx:
    proc: asyncio.subprocess.Process
    port: int
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/trpc"

    async def errors(self) -> str:
        """What nginx wrote to stderr (read once it has exited)."""
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")[-3000:]


async def _accepting(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def running_nginx(tmp_path: Path, node_ports: Sequence[int]) -> AsyncIterator[Nginx]:
    binary = nginx_binary()
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    port = free_port()
    conf.write_text(configure(CONFIG.read_text(), port, node_ports))
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-p",
        str(prefix),
        "-e",
        "stderr",
        "-c",
        str(conf),
        "-g",
        "daemon off;",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    nginx = Nginx(proc, port, prefix)
    try:

        async def up() -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"nginx exited: {await nginx.errors()}")
            return await _accepting(port)

        await until(up, "nginx to listen", 10)
        yield nginx
    finally:
        if proc.returncode is None:
            proc.terminate()  # fast shutdown: it closes every proxied connection
            try:
                await asyncio.wait_for(proc.wait(), STOP_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
