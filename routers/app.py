"""The application router: every procedure the server exposes, under its dotted path."""

from __future__ import annotations

from routers import devices, healthcare, rules, system, vitals
from rpc.router import Router

app_router = Router.merge(
    system=system.router,
    healthcare=healthcare.router,
    vitals=vitals.router,
    devices=devices.router,
    rules=rules.router,
)
