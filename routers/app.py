"""The application router: every procedure the server exposes, under its dotted path."""

from __future__ import annotations

from routers import healthcare, notifications, presence, system
from rpc.router import Router

app_router = Router.merge(
    system=system.router,
    healthcare=healthcare.router,
    presence=presence.router,
    notifications=notifications.router,
)
