"""The `apiKeys` router (CONTRACT 9): admins of a hospital create, list and revoke the keys its
integrations POST inbound webhooks with. Admin only; the hospital is checked by the router
(`hospitalId`) or, for a key named by id, here before anything changes (as for alerts: an
unknown key is NOT_FOUND, another hospital's FORBIDDEN)."""

from __future__ import annotations

from typing import cast

from routers.healthcare import services
from rpc.context import Context
from rpc.router import Router
from schemas.integrations import (
    ApiKey,
    ApiKeyCreated,
    CreateApiKeyInput,
    ListApiKeysInput,
    RevokeApiKeyInput,
    Revoked,
    Scope,
)
from services.integration_store import ApiKeyRow
from services.lifecycle import iso

ADMIN = frozenset({"admin"})

router = Router()


def api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        prefix=row.prefix,
        scopes=[cast(Scope, scope) for scope in row.scopes],
        signed=row.signing_secret is not None,
        created_at=iso(row.created_ts),
        last_used_at=None if row.last_used_ts is None else iso(row.last_used_ts),
    )


@router.mutation(roles=ADMIN)
async def create(ctx: Context, input: CreateApiKeyInput) -> ApiKeyCreated:
    """A key for the hospital's integration: the key (and signing secret) are shown only here."""
    row, key = await services(ctx).api_keys.create(
        input.hospital_id, input.name, list(input.scopes), input.signed
    )
    return ApiKeyCreated(key_id=row.key_id, key=key, signing_secret=row.signing_secret)


@router.query(roles=ADMIN, name="list")
async def list_keys(ctx: Context, input: ListApiKeysInput) -> list[ApiKey]:
    """The hospital's live keys, by prefix: never the keys themselves."""
    rows = await services(ctx).api_keys.of_hospital(input.hospital_id)
    return [api_key(row) for row in rows]


@router.mutation(roles=ADMIN)
async def revoke(ctx: Context, input: RevokeApiKeyInput) -> Revoked:
    """Refused on every node within a second, for good."""
    keys = services(ctx).api_keys
    row = await keys.get(input.key_id)
    ctx.require_hospital(row.hospital_id)
    return Revoked(revoked=await keys.revoke(row.key_id))
