"""An HTTP request without a valid token is charged to its address's rate bucket on arrival,
before its body is read: past the allowance it is refused at once (429, body unread, the
connection closed), so a flood of hostile bodies is paid for by the flooder. Authenticated
callers keep their own buckets."""

from __future__ import annotations

import orjson

from rpc.limits import Limits, Prepaid, TokenBucket
from tests.conftest import make_state, make_token
from tests.rpc import demo
from tests.rpc.wire import serve

PING = b'{"jsonrpc":"2.0","method":"system.ping","id":1}'
HOSTILE = b"[" + b"[]," * 7000 + b"[]]"  # over the anonymous size limit


def test_a_prepaid_bucket_does_not_charge_the_first_call_twice() -> None:
    now = [0.0]
    bucket = TokenBucket(3, 10.0, clock=lambda: now[0])
    assert bucket.take()  # the arrival
    prepaid = Prepaid(bucket)
    assert prepaid.take()  # its first call: paid already
    assert prepaid.take()
    assert prepaid.take()
    assert not prepaid.take()  # 1 arrival + 2 more calls = the bucket's 3


async def test_anonymous_requests_past_the_allowance_are_refused_before_their_body() -> None:
    state = make_state(demo.Feed(), Limits(rate_per_10s=5))
    async with serve(state) as client:
        statuses = []
        for _ in range(5):
            resp = await client.post("/api/trpc", data=HOSTILE)
            statuses.append(resp.status)
        refused = await client.post("/api/trpc", data=HOSTILE)
        assert statuses == [413] * 5  # over the anonymous size limit, each paid for
        assert refused.status == 429
        assert refused.headers["Connection"] == "close"
        body = orjson.loads(await refused.read())
        assert body["error"]["data"]["code"] == "TOO_MANY_REQUESTS"
        assert state.metrics.oversize_messages.get("http") == 5  # the sixth was never read
        trpc = await client.get("/api/trpc/system.ping")
        assert trpc.status == 429
        token = make_token()
        resp = await client.post(
            "/api/trpc", data=PING, headers={"Authorization": f"Bearer {token}"}
        )
        assert (await resp.json())["result"] == "pong"  # a caller with a token is not held up


async def test_an_anonymous_call_costs_one_token_not_two() -> None:
    state = make_state(demo.Feed(), Limits(rate_per_10s=4))
    async with serve(state) as client:
        replies = [await (await client.post("/api/trpc", data=PING)).json() for _ in range(4)]
        assert [r.get("result") for r in replies] == ["pong"] * 4
        assert (await client.post("/api/trpc", data=PING)).status == 429
