"""A small router exercising every feature of the generator; the golden files are built from it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, computed_field

from rpc.context import Context
from rpc.router import Router
from rpc.stream import Tracked
from schemas.base import HospitalId, InputModel, WireModel


class Colour(StrEnum):
    """A closed set of colours."""

    RED = "red"
    GREEN = "green"


class Window(BaseModel):
    """A window of items; `size` has a default, so inputs may omit it and outputs always carry it."""

    start: int = Field(ge=0)
    size: int = Field(default=10, ge=1, le=100)


class Widget(WireModel):
    """A widget as the server returns it."""

    widget_id: str
    colour: Colour
    note: str | None = Field(description="Free text; null when absent.")
    tags: list[str] = []
    window: Window
    scores: dict[str, float]
    pair: tuple[int, str]
    children: list[Widget] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        """Derived from the id."""
        return self.widget_id.upper()


class CreateWidget(InputModel):
    """Make a widget."""

    hospital_id: HospitalId
    colour: Colour
    note: str | None = None
    priority: Literal["low", "high"] = "low"
    window: Window
    count: Annotated[int, Field(ge=1, le=5)]
    reason: str | None = Field(description="Required, but may be null.")


class Created(WireModel):
    type: Literal["widget.created"]
    widget: Widget


class Deleted(WireModel):
    type: Literal["widget.deleted"]
    widget_id: str


class Reset(WireModel):
    """Sent when history was lost."""

    type: Literal["stream.reset"]
    reason: str


WidgetEvent = Annotated[Created | Deleted | Reset, Field(discriminator="type")]


class WatchInput(InputModel):
    hospital_id: HospitalId
    last_event_id: str | None = None


class TicksInput(InputModel):
    every_ms: Annotated[int, Field(ge=250, le=60000)] = 5000


router = Router()


@router.query(public=True)
async def ping(ctx: Context) -> Literal["pong"]:
    """Liveness."""
    return "pong"


@router.mutation(name="widgets.create")
async def create(ctx: Context, input: CreateWidget) -> Widget:
    """Create a widget.

    Returns the new widget."""
    raise NotImplementedError


@router.query(name="widgets.list")
async def list_widgets(ctx: Context, input: Window) -> list[Widget]:
    raise NotImplementedError


@router.subscription(name="widgets.watch")
async def watch(ctx: Context, input: WatchInput) -> AsyncIterator[Tracked[WidgetEvent]]:
    """Every change, resumable."""
    raise NotImplementedError
    yield


@router.subscription(name="widgets.ticks")
async def ticks(ctx: Context, input: TicksInput) -> AsyncIterator[int]:
    raise NotImplementedError
    yield


@router.mutation(name="widgets.deep.nothing")
async def nothing(ctx: Context) -> None:
    raise NotImplementedError
