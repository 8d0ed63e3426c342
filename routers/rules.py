"""The `rules` router (CONTRACT 8): a hospital's threshold rules.

Roles: everyone who may see the hospital lists them; `charge_nurse` and `admin` change them.
Every hospital starts with the defaults (services/vitals_store.default_rules), which may be
changed or deleted like any other rule.
"""

from __future__ import annotations

from typing import cast

from rpc.context import Context
from rpc.router import Router
from schemas.devices import (
    DeleteRuleInput,
    DeleteRuleResult,
    ListRulesInput,
    ThresholdRule,
    UpsertRuleInput,
)
from services.container import Services

MANAGERS = frozenset({"charge_nurse", "admin"})

router = Router()


def services(ctx: Context) -> Services:
    return cast(Services, ctx.services)


@router.query(name="list")
async def list_rules(ctx: Context, input: ListRulesInput) -> list[ThresholdRule]:
    """The hospital's rules."""
    return await services(ctx).vitals.rules(input.hospital_id)


@router.mutation(roles=MANAGERS)
async def upsert(ctx: Context, input: UpsertRuleInput) -> ThresholdRule:
    """Create a rule, or replace the one with this `ruleId` (generated when left out)."""
    return await services(ctx).vitals.upsert_rule(input)


@router.mutation(roles=MANAGERS)
async def delete(ctx: Context, input: DeleteRuleInput) -> DeleteRuleResult:
    """Delete a rule; `deleted` is false when there was none with that id."""
    deleted = await services(ctx).vitals.delete_rule(input.hospital_id, input.rule_id)
    return DeleteRuleResult(deleted=deleted)
