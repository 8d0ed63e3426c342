"""A stand-in `healthcare` router for the benchmark: the same two procedures and wire shapes
as the real domain (`createAlert`, `subscribeToAlerts`), on Alertwire's RPC core, with an
in-memory hub instead of storage. `bench_fanout --standin` uses it to measure the framework
(session, dialects, envelopes, outbound queues) apart from the domain services, and it let the
harness be validated before the domain existed. It is not part of the product."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from pydantic import Field

from bench.events import alert_event
from rpc.context import Context
from rpc.router import Router
from rpc.stream import EventSink, PushStream, Tracked
from schemas.base import HospitalId, InputModel


class CreateAlertInput(InputModel):
    hospital_id: HospitalId
    type: Annotated[str, Field(min_length=1, max_length=64)]
    priority: str
    title: Annotated[str, Field(min_length=1, max_length=200)]
    message: str | None = None
    patient_id: str | None = None
    location: str | None = None


class SubscribeInput(InputModel):
    hospital_id: HospitalId
    last_event_id: str | None = None


class Hub:
    """Encode once, then hand the same bytes to every live stream of the hospital."""

    def __init__(self) -> None:
        self.streams: dict[str, set[HubStream]] = {}
        self.seq = 0

    def publish(self, params: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        event = alert_event(self.seq, params)
        payload = orjson.dumps(event)
        for stream in list(self.streams.get(params["hospitalId"], ())):
            stream.deliver(event["id"], payload)
        alert: dict[str, Any] = event["alert"]
        return alert


class HubStream(PushStream):
    def __init__(self, hub: Hub, hospital_id: str) -> None:
        super().__init__()
        self.hub = hub
        self.hospital_id = hospital_id
        self.sink: EventSink | None = None
        hub.streams.setdefault(hospital_id, set()).add(self)

    def deliver(self, event_id: str, payload: bytes) -> None:
        if self.sink is not None:
            self.sink.event(event_id, payload)

    async def _open(self, sink: EventSink) -> None:
        self.sink = sink

    def _close(self) -> None:
        self.hub.streams.get(self.hospital_id, set()).discard(self)


router = Router()


@router.mutation(name="createAlert", roles={"nurse", "charge_nurse", "physician", "service"})
async def create_alert(ctx: Context, input: CreateAlertInput) -> dict[str, Any]:
    hub: Hub = ctx.services
    return hub.publish(input.model_dump(by_alias=True))


@router.subscription(name="subscribeToAlerts")
async def subscribe_to_alerts(
    ctx: Context, input: SubscribeInput
) -> AsyncIterator[Tracked[dict[str, Any]]]:
    return HubStream(ctx.services, input.hospital_id)
