"""A static single-page site beside the API, from a directory the composition root names:
`GET /` is its `index.html`, `GET /assets/<name>` the files of its `assets/` folder.

Asset names carry a hash of their content (the build writes them so), so browsers may keep
them for a year; the page itself is never cached, so a new build is picked up at the next
load. The page is served with a Content-Security-Policy that allows scripts, styles and
connections from this origin only: no inline script or style, no eval, no framing.

Everything is read into memory when the app is built (a few tens of KB): a request is a
dictionary lookup, never a path on disk, so no name can reach outside the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

# The security hook (app._response_headers) sets `Cache-Control: no-store` on every
# response; a handler that stores a policy under this key has it replace that one.
CACHE_CONTROL_KEY = web.RequestKey("alertwire_cache_control", str)
IMMUTABLE = "public, max-age=31536000, immutable"

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
# A Host header is the client's to write: only a plain host[:port] goes into the policy.
PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def content_security_policy(host: str | None) -> str:
    """The page's policy; WebSocket connections are allowed to the origin that served it
    (named explicitly: not every browser counts ws: as 'self')."""
    connect = "'self'"
    if host is not None and PLAIN_HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            # The sign-in form is handled by script; should it ever be submitted for real,
            # the token must not end up in a URL.
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


@dataclass(frozen=True)
class Site:
    index: bytes
    assets: dict[str, tuple[bytes, str]]

    @classmethod
    def load(cls, directory: Path) -> Site:
        index = directory / "index.html"
        if not index.is_file():
            raise FileNotFoundError(f"no index.html in {directory}")
        assets: dict[str, tuple[bytes, str]] = {}
        folder = directory / "assets"
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                content_type = CONTENT_TYPES.get(path.suffix)
                if path.is_file() and content_type is not None:
                    assets[path.name] = (path.read_bytes(), content_type)
        return cls(index.read_bytes(), assets)


SITE_KEY = web.AppKey("alertwire_site", Site)


async def handle_index(request: web.Request) -> web.Response:
    headers = {**PAGE_HEADERS, "Content-Security-Policy": content_security_policy(request.host)}
    return web.Response(
        body=request.app[SITE_KEY].index,
        content_type="text/html",
        charset="utf-8",
        headers=headers,
    )


async def handle_asset(request: web.Request) -> web.Response:
    found = request.app[SITE_KEY].assets.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    request[CACHE_CONTROL_KEY] = IMMUTABLE
    return web.Response(body=body, headers={"Content-Type": content_type, **PAGE_HEADERS})


def add_site(app: web.Application, directory: Path) -> None:
    app[SITE_KEY] = Site.load(directory)
    app.router.add_get("/", handle_index)
    app.router.add_get("/assets/{name}", handle_asset)
