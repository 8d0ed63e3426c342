"""Declare procedures; the router reads their types once, at registration.

    router = Router()

    @router.query(public=True)
    async def ping(ctx: Context) -> str: ...

    @router.mutation(roles={"nurse"})
    async def acknowledge(ctx: Context, input: AckInput) -> Alert: ...

    @router.subscription()
    async def alerts(ctx: Context, input: SubInput) -> AsyncIterator[Tracked[AlertEvent]]: ...

    app_router = Router.merge(system=system_router, healthcare=healthcare_router)

The input is the second parameter's annotation (a Pydantic model; absent means no input), the
output is the return annotation. Nested routers give dotted paths; a duplicate path raises at
import time.

Access scopes: an input field declared with `Field(json_schema_extra={"x-scope": "hospital"})`
(or a list of such ids) is checked against the caller's `hospitals` claim before the procedure
runs, in one place (`Procedure.check_scopes`).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from rpc.context import ROLES, Context
from rpc.errors import invalid_params
from rpc.stream import Tracked
from schemas.base import refused_text

F = TypeVar("F", bound=Callable[..., Any])

SCOPE_KEY = "x-scope"


class Kind(StrEnum):
    QUERY = "query"
    MUTATION = "mutation"
    SUBSCRIPTION = "subscription"


@dataclass(frozen=True, slots=True)
class ScopeField:
    """An input field naming a resource the caller must be granted (e.g. a hospital)."""

    name: str  # Python attribute name
    scope: str  # "hospital"


@dataclass(slots=True)
class Procedure:
    path: str
    kind: Kind
    func: Callable[..., Any]
    input_model: type[BaseModel] | None
    output_type: Any  # the output annotation; for subscriptions the event type
    tracked: bool = False  # subscriptions: events carry ids
    public: bool = False
    roles: frozenset[str] | None = None  # None: every authenticated role
    description: str = ""
    scopes: tuple[ScopeField, ...] = ()
    output_adapter: TypeAdapter[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.output_adapter = TypeAdapter(self.output_type)

    def parse_input(self, raw: Any) -> BaseModel | None:
        """Validate raw params; raises invalid params with per-field messages."""
        if self.input_model is None:
            if raw is None or raw == {}:
                return None
            raise invalid_params({"": "This procedure takes no input"})
        if raw is None:
            raw = {}
        try:
            return self.input_model.model_validate(raw)
        except ValidationError as exc:
            raise invalid_params(field_errors(exc)) from None

    def dump_output(self, value: Any) -> bytes:
        return self.output_adapter.dump_json(value, by_alias=True)

    def dump_event(self, value: Any) -> bytes:
        return self.output_adapter.dump_json(value, by_alias=True)

    def scoped_values(self, params: BaseModel | None) -> Iterable[tuple[str, str]]:
        """(scope, id) pairs the input names, for the access check."""
        if params is None:
            return
        for scope in self.scopes:
            value = getattr(params, scope.name, None)
            if value is None:
                continue
            if isinstance(value, str):
                yield scope.scope, value
            else:
                for item in value:
                    yield scope.scope, item

    def check_scopes(self, ctx: Context, params: BaseModel | None) -> None:
        for scope, value in self.scoped_values(params):
            if scope == "hospital":
                ctx.require_hospital(value)


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic errors -> {"a.b.0": "message"} with wire (alias) names; no input values echoed.

    A text refused for its characters says which kind it held (schemas.base.refused_text)
    instead of quoting the pattern; the input is read for that and goes no further."""
    out: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        message = err["msg"]
        if err["type"] == "string_pattern_mismatch":
            pattern = str(err.get("ctx", {}).get("pattern", ""))
            message = refused_text(pattern, err.get("input")) or message
        out.setdefault(path, message)
    return out


def _scopes_of(model: type[BaseModel] | None) -> tuple[ScopeField, ...]:
    if model is None:
        return ()
    found: list[ScopeField] = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get(SCOPE_KEY), str):
            found.append(ScopeField(name, str(extra[SCOPE_KEY])))
    return tuple(found)


def _signature_types(func: Callable[..., Any]) -> tuple[type[BaseModel] | None, Any]:
    hints = typing.get_type_hints(func)
    params = list(inspect.signature(func).parameters)
    if not params:
        raise TypeError(f"{func.__qualname__}: the first parameter must be the Context")
    if len(params) > 2:
        raise TypeError(f"{func.__qualname__}: a procedure takes (ctx) or (ctx, input)")
    input_model: type[BaseModel] | None = None
    if len(params) == 2:
        annotation = hints.get(params[1])
        if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
            raise TypeError(f"{func.__qualname__}: the input must be a Pydantic model")
        input_model = annotation
    if "return" not in hints:
        raise TypeError(f"{func.__qualname__}: the return type must be annotated")
    return input_model, hints["return"]


def _event_type(func: Callable[..., Any], annotation: Any) -> tuple[Any, bool]:
    """AsyncIterator[Tracked[E]] -> (E, True); AsyncIterator[E] -> (E, False)."""
    if get_origin(annotation) not in (AsyncIterator, AsyncGenerator, AsyncIterable):
        raise TypeError(f"{func.__qualname__}: a subscription returns AsyncIterator[...]")
    (item, *_) = get_args(annotation)
    if get_origin(item) is Tracked:
        return get_args(item)[0], True
    return item, False


class Router:
    """A set of procedures under dotted paths."""

    def __init__(self) -> None:
        self.procedures: dict[str, Procedure] = {}

    def _register(
        self,
        kind: Kind,
        *,
        name: str | None,
        public: bool,
        roles: Iterable[str] | None,
    ) -> Callable[[F], F]:
        role_set = frozenset(roles) if roles is not None else None
        if role_set is not None and not role_set <= ROLES:
            raise ValueError(f"unknown roles: {sorted(role_set - ROLES)}")

        def decorate(func: F) -> F:
            path = name or _camel(func.__name__)
            input_model, output = _signature_types(func)
            tracked = False
            if kind is Kind.SUBSCRIPTION:
                output, tracked = _event_type(func, output)
            self._add(
                Procedure(
                    path=path,
                    kind=kind,
                    func=func,
                    input_model=input_model,
                    output_type=output,
                    tracked=tracked,
                    public=public,
                    roles=role_set,
                    description=inspect.getdoc(func) or "",
                    scopes=_scopes_of(input_model),
                )
            )
            return func

        return decorate

    def query(
        self, *, name: str | None = None, public: bool = False, roles: Iterable[str] | None = None
    ) -> Callable[[F], F]:
        return self._register(Kind.QUERY, name=name, public=public, roles=roles)

    def mutation(
        self, *, name: str | None = None, public: bool = False, roles: Iterable[str] | None = None
    ) -> Callable[[F], F]:
        return self._register(Kind.MUTATION, name=name, public=public, roles=roles)

    def subscription(
        self, *, name: str | None = None, public: bool = False, roles: Iterable[str] | None = None
    ) -> Callable[[F], F]:
        return self._register(Kind.SUBSCRIPTION, name=name, public=public, roles=roles)

    def _add(self, procedure: Procedure) -> None:
        if procedure.path in self.procedures:
            raise ValueError(f"duplicate procedure path: {procedure.path}")
        self.procedures[procedure.path] = procedure

    def include(self, prefix: str, child: Router) -> Router:
        """Mount `child` under `prefix.`; returns self for chaining."""
        for path, proc in child.procedures.items():
            mounted = Procedure(
                path=f"{prefix}.{path}",
                kind=proc.kind,
                func=proc.func,
                input_model=proc.input_model,
                output_type=proc.output_type,
                tracked=proc.tracked,
                public=proc.public,
                roles=proc.roles,
                description=proc.description,
                scopes=proc.scopes,
            )
            self._add(mounted)
        return self

    @classmethod
    def merge(cls, **children: Router) -> Router:
        root = cls()
        for prefix, child in children.items():
            root.include(prefix, child)
        return root

    def get(self, path: str) -> Procedure | None:
        return self.procedures.get(path)

    def __iter__(self) -> typing.Iterator[Procedure]:
        return iter(sorted(self.procedures.values(), key=lambda p: p.path))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


ProcedureFunc = Callable[..., Awaitable[Any]]
