"""The application router: every procedure the server exposes, under its dotted path."""

from __future__ import annotations

from routers import (
    admin,
    apikeys,
    devices,
    healthcare,
    notifications,
    presence,
    rules,
    system,
    vitals,
    webhooks,
)
from rpc.router import Router

app_router = Router.merge(
    system=system.router,
    healthcare=healthcare.router,
    admin=admin.router,
    apiKeys=apikeys.router,
    webhooks=webhooks.router,
    presence=presence.router,
    notifications=notifications.router,
    vitals=vitals.router,
    devices=devices.router,
    rules=rules.router,
)
