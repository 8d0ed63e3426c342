"""The receiver's signature check in the README (section "Out: webhooks to your endpoint")
accepts what the server signs and refuses what it must."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpc import signatures

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- webhook signature example -->\n```python\n(?P<code>.*?)```", re.DOTALL)


def readme_verify() -> Callable[..., bool]:
    match = BLOCK.search(README.read_text(encoding="utf-8"))
    assert match is not None, "the README's signature example is missing"
    namespace: dict[str, Any] = {}
    exec(compile(match["code"], str(README), "exec"), namespace)  # noqa: S102 - our own README
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def test_the_readme_example_checks_signatures_as_the_server_makes_them() -> None:
    verify = readme_verify()
    secret, body, now = "whsec_example", b'{"id":"0000000000000001"}', int(time.time())
    assert verify(secret, signatures.sign(secret, now, body), body)
    assert not verify(secret, signatures.sign(secret, now, body), body + b" ")
    assert not verify("other", signatures.sign(secret, now, body), body)
    assert not verify(secret, signatures.sign(secret, now - 301, body), body)
    assert not verify(secret, "t=abc,v1=00", body)
    rotated = f"t={now},v1={'0' * 64},v1={signatures.digest(secret, now, body)}"
    assert verify(secret, rotated, body)
