"""Forged and broken tokens on every path a token can take (CONTRACT 5), table-driven.

Each forgery is presented on each path against the protected `system.whoami` (on SSE the demo
router's `demo.feed` subscription). Every refusal must be UNAUTHORIZED (-32001, httpStatus 401),
name the problem, never echo the token, and count once in alertwire_auth_failures_total.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rpc.auth import AuthConfig
from tests.conftest import SECRET, make_state
from tests.rpc import demo
from tests.rpc.wire import (
    UPGRADE,
    Client,
    call,
    enc,
    read_events,
    recv,
    recv_close,
    send_json,
    serve,
)

ISSUER = "https://idp.alertwire.test"
AUDIENCE = "alertwire"
HS = AuthConfig(SECRET, issuer=ISSUER, audience=AUDIENCE)

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _RSA.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
PUBLIC_PEM = _RSA.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
RS = AuthConfig(PUBLIC_PEM.decode(), ("RS256",))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A compact JWS built by hand (PyJWT refuses to make these): HMAC-SHA256 with
    `hmac_key`, or an empty signature."""
    header_part = b64url(json.dumps(header, separators=(",", ":")).encode())
    claims_part = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header_part}.{claims_part}"
    signature = b""
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(config: AuthConfig = HS, **changes: Any) -> dict[str, Any]:
    """Valid claims for `config`; a change to None removes that claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "nurse-1",
        "role": "nurse",
        "hospitals": ["h1"],
        "iat": now,
        "exp": now + 600,
    }
    if config.issuer:
        base["iss"] = config.issuer
    if config.audience:
        base["aud"] = config.audience
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(payload, key, algorithm="HS256")


def valid_token(config: AuthConfig) -> str:
    if config is RS:
        return jwt.encode(claims(RS), PRIVATE_PEM, algorithm="RS256")
    return hs256(claims())


@dataclass(frozen=True)
class Forgery:
    name: str
    server: AuthConfig
    make: Callable[[], str | None]
    message: str | None  # None: no token is presented
    reason: str  # the auth-failure metric's label


def _now() -> int:
    return int(time.time())


FORGERIES = [
    Forgery("no token", HS, lambda: None, None, "missing"),
    Forgery("garbage", HS, lambda: "this-is-not-a-jwt-0123456789", "Token malformed", "malformed"),
    Forgery(
        "three garbage segments",
        HS,
        lambda: "eyJnYXJiYWdl.bm90IGpzb24.c2ln",
        "Token malformed",
        "malformed",
    ),
    Forgery(
        "wrong key",
        HS,
        lambda: hs256(claims(), key="another-secret-0123456789-abcdefghijkl"),
        "Token signature invalid",
        "signature",
    ),
    Forgery(
        "alg none",
        HS,
        lambda: craft({"alg": "none", "typ": "JWT"}, claims(), None),
        "Token algorithm not accepted",
        "algorithm",
    ),
    Forgery(
        "alg None, signed anyway",
        HS,
        lambda: craft({"alg": "None", "typ": "JWT"}, claims(), SECRET.encode()),
        "Token algorithm not accepted",
        "algorithm",
    ),
    Forgery(
        "alg none against RS256",
        RS,
        lambda: craft({"alg": "none", "typ": "JWT"}, claims(RS), None),
        "Token algorithm not accepted",
        "algorithm",
    ),
    Forgery(
        "HS256 signed with the RS256 public key",
        RS,
        lambda: craft({"alg": "HS256", "typ": "JWT"}, claims(RS), PUBLIC_PEM),
        "Token algorithm not accepted",
        "algorithm",
    ),
    Forgery(
        "expired",
        HS,
        lambda: hs256(claims(iat=_now() - 3600, exp=_now() - 60)),
        "Token expired",
        "expired",
    ),
    Forgery(
        "not yet valid",
        HS,
        lambda: hs256(claims(nbf=_now() + 60)),
        "Token not yet valid",
        "not_yet_valid",
    ),
    Forgery(
        "missing exp",
        HS,
        lambda: hs256(claims(exp=None)),
        "Token lacks the required claim 'exp'",
        "missing_claim",
    ),
    Forgery(
        "missing sub",
        HS,
        lambda: hs256(claims(sub=None)),
        "Token lacks the required claim 'sub'",
        "missing_claim",
    ),
    Forgery(
        "wrong issuer",
        HS,
        lambda: hs256(claims(iss="https://evil.example")),
        "Token issuer not accepted",
        "issuer",
    ),
    Forgery(
        "wrong audience",
        HS,
        lambda: hs256(claims(aud="someone-else")),
        "Token audience not accepted",
        "audience",
    ),
]


@dataclass
class Refusal:
    """What the client saw: the error object and everything it received, as text."""

    error: dict[str, Any]
    seen: str

    @property
    def http_status(self) -> Any:
        return self.error["data"]["httpStatus"]


Probe = Callable[[Client, str | None, AuthConfig], Awaitable[Refusal]]
WHOAMI = {"jsonrpc": "2.0", "method": "system.whoami", "id": 1}


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


async def jsonrpc_post(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    resp = await client.post("/api/trpc", data=orjson.dumps(WHOAMI), headers=bearer(token))
    assert resp.status == 200  # JSON-RPC over HTTP: errors travel in the body
    text = await resp.text()
    return Refusal(orjson.loads(text)["error"], text)


async def trpc_get(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    resp = await client.get("/api/trpc/system.whoami", headers=bearer(token))
    assert resp.status == 401
    text = await resp.text()
    return Refusal(orjson.loads(text)["error"], text)


async def trpc_post(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    resp = await client.post(
        "/api/trpc/subtract",
        data='{"minuend":2,"subtrahend":1}',
        headers={"Content-Type": "application/json", **bearer(token)},
    )
    assert resp.status == 401
    text = await resp.text()
    return Refusal(orjson.loads(text)["error"], text)


async def _anonymous_whoami(client: Client) -> Refusal:
    """Without a token the upgrade succeeds; protected calls are UNAUTHORIZED."""
    ws = await client.ws_connect("/api/trpc")
    reply = await call(ws, "system.whoami")
    await ws.close()
    return Refusal(reply["error"], orjson.dumps(reply).decode())


async def _refused_upgrade(client: Client, url: str, headers: dict[str, str]) -> Refusal:
    resp = await client.get(url, headers={**UPGRADE, **headers})  # a complete WS handshake
    assert resp.status == 401  # not 101: refused before the upgrade
    assert "Sec-WebSocket-Accept" not in resp.headers
    assert resp.headers["Connection"].lower() == "close"  # nothing held open after a refusal
    text = await resp.text()
    return Refusal(orjson.loads(text)["error"], text)


async def ws_header(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    if token is None:
        return await _anonymous_whoami(client)
    return await _refused_upgrade(client, "/api/trpc", bearer(token))


async def ws_query(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    if token is None:
        return await _anonymous_whoami(client)
    return await _refused_upgrade(client, f"/api/trpc?token={quote(token, safe='')}", {})


async def connection_params(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    ws = await client.ws_connect("/api/trpc?connectionParams=1")
    data = {} if token is None else {"token": token}
    await send_json(ws, {"method": "connectionParams", "data": data})
    if token is None:  # an anonymous socket: calls are refused, the socket stays
        await send_json(ws, {"id": 1, "method": "query", "params": {"path": "system.whoami"}})
        reply = await recv(ws)
        assert reply["id"] == 1
        await ws.close()
        return Refusal(reply["error"], orjson.dumps(reply).decode())
    reply = await recv(ws)
    assert reply["id"] is None
    closing = await recv_close(ws)
    assert closing.data == 4001
    return Refusal(reply["error"], orjson.dumps(reply).decode() + str(closing.extra))


async def sse(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    params = {} if token is None else {"token": token}
    url = f"/api/trpc/demo.feed?connectionParams={enc(params)}&input={enc({'hospitalId': 'h1'})}"
    resp = await client.get(url, headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    connected, error = await read_events(resp, 2)
    assert connected["event"] == "connected"
    assert error["event"] == "serialized-error"
    rest = await resp.content.read()  # the server ends the stream after the error
    return Refusal(orjson.loads(error["data"]), error["data"] + rest.decode())


async def auth_authenticate(client: Client, token: str | None, config: AuthConfig) -> Refusal:
    ws = await client.ws_connect("/api/trpc")
    reply = await call(ws, "auth.authenticate", {} if token is None else {"token": token})
    # the socket stays usable: a retry with a good token works
    retry = await call(ws, "auth.authenticate", {"token": valid_token(config)}, id=2)
    assert retry["result"]["sub"] == "nurse-1"
    assert (await call(ws, "system.whoami", id=3))["result"]["sub"] == "nurse-1"
    await ws.close()
    return Refusal(reply["error"], orjson.dumps(reply).decode())


PATHS: dict[str, tuple[Probe, str]] = {
    # path: (probe, the message when no token is presented at all)
    "http-jsonrpc-post": (jsonrpc_post, "Authentication required"),
    "trpc-http-get": (trpc_get, "Authentication required"),
    "trpc-http-post": (trpc_post, "Authentication required"),
    "ws-handshake-header": (ws_header, "Authentication required"),
    "ws-handshake-query": (ws_query, "Authentication required"),
    "trpc-connection-params": (connection_params, "Authentication required"),
    "sse-connection-params": (sse, "Authentication required"),
    "jsonrpc-auth-authenticate": (auth_authenticate, "Missing token"),
}


def assert_not_echoed(token: str, seen: str) -> None:
    assert token not in seen
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in seen


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("forgery", FORGERIES, ids=[f.name for f in FORGERIES])
async def test_forged_token_is_refused(forgery: Forgery, path: str) -> None:
    probe, anonymous_message = PATHS[path]
    state = make_state(demo.Feed())
    state.auth = forgery.server
    token = forgery.make()
    async with serve(state) as client:
        refusal = await probe(client, token, forgery.server)
    assert refusal.error["code"] == -32001
    assert refusal.error["data"]["code"] == "UNAUTHORIZED"
    assert refusal.http_status == 401
    assert refusal.error["message"] == (forgery.message or anonymous_message)
    failures = state.metrics.auth_failures
    if token is not None:
        assert_not_echoed(token, refusal.seen)
        assert failures.get(forgery.reason) == 1
        assert failures.total() == 1
    else:
        assert failures.total() == (1 if path == "jsonrpc-auth-authenticate" else 0)
    assert state.metrics.auth_failures.get("other") == 0


async def test_a_valid_token_passes_every_path_the_forgeries_were_refused_on() -> None:
    """The control: the same probes with good tokens get through (HS and RS servers)."""
    for config in (HS, RS):
        state = make_state(demo.Feed())
        state.auth = config
        token = valid_token(config)
        async with serve(state) as client:
            resp = await client.get("/api/trpc/system.whoami", headers=bearer(token))
            assert (await resp.json())["result"]["data"]["sub"] == "nurse-1"
            ws = await client.ws_connect(f"/api/trpc?token={token}")
            assert (await call(ws, "system.whoami"))["result"]["sub"] == "nurse-1"
            await ws.close()
            ws = await client.ws_connect("/api/trpc?connectionParams=1")
            await send_json(ws, {"method": "connectionParams", "data": {"token": token}})
            await send_json(ws, {"id": 1, "method": "query", "params": {"path": "system.whoami"}})
            assert (await recv(ws))["result"]["data"]["sub"] == "nurse-1"
            await ws.close()
        assert state.metrics.auth_failures.total() == 0
