"""`rpc.discover`: an OpenRPC 1.3 document built from the router (every method, its params by
name and its result schema). Built once per router and cached as encoded JSON."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from rpc.router import Kind, Router
from schemas.system import AuthenticateInput, Identity

OPENRPC_VERSION = "1.3.2"
REF = "#/components/schemas/{model}"

_cache: dict[int, bytes] = {}


def discover(router: Router) -> bytes:
    key = id(router)
    if key not in _cache:
        _cache[key] = orjson.dumps(build_document(router))
    return _cache[key]


def _schema(annotation: Any, components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    return schema


def _params(model: type[BaseModel] | None, components: dict[str, Any]) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = _schema(model, components, "validation")
    if "$ref" in schema:  # the model itself went to components; read it back for its fields
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    return [
        {"name": name, "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _method(
    name: str, description: str, params: list[dict[str, Any]], result: dict[str, Any], kind: str
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description or name,
        "paramStructure": "by-name",
        "params": params,
        "result": {"name": "result", "schema": result},
        "x-kind": kind,
    }


def build_document(router: Router) -> dict[str, Any]:
    components: dict[str, Any] = {}
    methods = []
    for proc in router:
        if proc.kind is Kind.SUBSCRIPTION:
            event = _schema(proc.output_type, components, "serialization")
            result = {
                "type": "object",
                "properties": {"subscription": {"type": "string"}},
                "required": ["subscription"],
                "x-events": event,
                "x-tracked": proc.tracked,
            }
        else:
            result = _schema(proc.output_type, components, "serialization")
        method = _method(
            proc.path,
            proc.description,
            _params(proc.input_model, components),
            result,
            proc.kind.value,
        )
        # Who may call it: public (no token), or the roles allowed (absent: every role).
        if proc.public:
            method["x-public"] = True
        elif proc.roles is not None:
            method["x-roles"] = sorted(proc.roles)
        methods.append(method)
    methods.append(
        _method(
            "auth.authenticate",
            "Authenticate or refresh this WebSocket connection with a bearer token.",
            _params(AuthenticateInput, components),
            _schema(Identity, components, "serialization"),
            "mutation",
        )
    )
    methods.append(
        _method(
            "subscription.stop",
            "Stop a subscription of this connection; false when it is unknown or finished.",
            [{"name": "subscription", "required": True, "schema": {"type": "string"}}],
            {"type": "boolean"},
            "mutation",
        )
    )
    methods.append(
        _method(
            "rpc.discover",
            "This document.",
            [],
            {"type": "object", "description": "An OpenRPC document"},
            "query",
        )
    )
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "Alertwire",
            "version": "0.1.0",
            "description": "Real-time clinical alerting over JSON-RPC 2.0 and tRPC.",
        },
        "methods": methods,
        "components": {"schemas": dict(sorted(components.items()))},
    }
