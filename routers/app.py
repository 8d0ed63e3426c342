"""The application router: every procedure the server exposes, under its dotted path."""

from __future__ import annotations

from rpc.router import Router
from routers import system

app_router = Router.merge(system=system.router)
