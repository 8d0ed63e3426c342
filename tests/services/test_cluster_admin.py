"""The admin procedures' use of the cluster state (services/admin.py, rpc/admin_control.py),
on both implementations (the contract suite's `make_node`): a stats question is answered by
every node that has a NodeControl through short-lived keys, a node that stays silent is
reported from the connection view, and a revocation broadcast reaches every node's rules."""

from __future__ import annotations

from rpc.admin_control import NodeControl
from rpc.context import Principal
from rpc.metrics import Metrics
from rpc.revocation import RevocationRules, Revocations
from services.admin import AdminService
from tests.services import test_cluster_contract as contract
from tests.services.test_cluster_contract import MakeNode, entry, sees, until

make_node = contract.make_node  # the contract suite's fixture: memory and Redis nodes


class NoStore:
    """The revocation seam, in memory: these tests are about the cluster."""

    def __init__(self) -> None:
        self.subjects: dict[str, float] = {}
        self.tokens: set[str] = set()

    async def revoke_subject(self, sub: str, issued_before: float, at: float, by: str) -> None:
        self.subjects[sub] = issued_before

    async def revoke_token(self, jti: str, at: float, by: str) -> None:
        self.tokens.add(jti)

    async def load(self) -> RevocationRules:
        return RevocationRules(dict(self.subjects), frozenset(self.tokens))


async def test_stats_are_answered_by_every_node_and_a_silent_one_comes_from_the_view(
    make_node: MakeNode,
) -> None:
    a, b, c = await make_node("node-a"), await make_node("node-b"), await make_node("node-c")
    for node in (a, b):  # node-c has no NodeControl: an older version, say
        NodeControl(node, set(), Revocations(), Metrics()).attach()
    a.connection_opened("c1", entry("n1", "nurse", "h1"))
    b.connection_opened("c2", entry("n2", "nurse", "h1"))
    c.connection_opened("c3", entry("n3", "nurse", "h2"))
    c.connection_opened("c4", entry("n3", "nurse", "h1"))
    await sees(a, lambda n: len(n.node_connections()) == 3, "every node's connections")
    assert a.node_entries("node-c") == {
        "c3": entry("n3", "nurse", "h2"),
        "c4": entry("n3", "nurse", "h1"),
    }
    stats = await AdminService(NoStore(), a).stats("admin-1", None)
    # The answering nodes count their own sessions (none here); node-c is counted from the view.
    assert [(n.node, n.connections, n.users) for n in stats.nodes] == [
        ("node-a", 0, 0),
        ("node-b", 0, 0),
        ("node-c", 2, 1),
    ]
    assert stats.users == 3  # distinct users in the cluster's view
    by_hospital = await AdminService(NoStore(), a).stats("admin-1", "h2")
    assert [(n.node, n.connections) for n in by_hospital.nodes][-1] == ("node-c", 1)


async def test_a_revocation_reaches_the_rules_of_every_node(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    rules = {"node-a": Revocations(), "node-b": Revocations()}
    for node in (a, b):
        NodeControl(node, set(), rules[node.node_id], Metrics()).attach()
    admin = AdminService(NoStore(), a)
    admin.revocations = rules["node-a"]
    await admin.revoke_token("admin-1", "jti-9")
    stolen = Principal("n1", "nurse", frozenset({"h1"}), 1e12, issued_at=1.0, jti="jti-9")
    await until(lambda: rules["node-b"].refuses(stolen), "node-b to refuse the token")
    assert rules["node-a"].refuses(stolen)
