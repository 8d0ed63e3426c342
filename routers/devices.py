"""The `devices` router (CONTRACT 8): the device registry and its live status stream.

Roles: only `service` reports status; everyone who may see the hospital lists and subscribes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from rpc.context import Context
from rpc.router import Router
from schemas.devices import (
    Device,
    ListDevicesInput,
    ReportDeviceStatusInput,
    SubscribeDeviceStatusInput,
)
from services.container import Services
from services.vitals_store import DeviceRecord

REPORTERS = frozenset({"service"})
# Device changes are conflated per device like vitals, at this rate.
STATUS_RATE_HZ = 4.0

router = Router()


def services(ctx: Context) -> Services:
    return cast(Services, ctx.services)


@router.mutation(roles=REPORTERS)
async def report_status(ctx: Context, input: ReportDeviceStatusInput) -> Device:
    """Record a device's status. `offline` while assigned to a patient raises the patient's
    `device.offline` alert (high, created by the caller)."""
    device, _ = await services(ctx).vitals.report_status(input, ctx.user.sub)
    return device.wire()


@router.query(name="list")
async def list_devices(ctx: Context, input: ListDevicesInput) -> list[Device]:
    """The hospital's devices with their last status and when each was last seen."""
    devices = await services(ctx).vitals.store.devices(input.hospital_id)
    return [d.wire() for d in devices]


@router.subscription()
async def subscribe_to_status(
    ctx: Context, input: SubscribeDeviceStatusInput
) -> AsyncIterator[Device]:
    """Every device of the hospital at once, then each device as it changes (status, patient,
    battery, detail); a subscriber that falls behind gets each device's newest state."""
    vitals = services(ctx).vitals

    async def snapshot() -> list[DeviceRecord]:
        return await vitals.store.devices(input.hospital_id)

    stream: Any = vitals.hub.device_stream(input.hospital_id, STATUS_RATE_HZ, snapshot)
    return cast(AsyncIterator[Device], stream)
