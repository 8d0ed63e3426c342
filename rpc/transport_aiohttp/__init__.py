"""The aiohttp transport: the only part of `rpc` that knows about sockets."""

from rpc.transport_aiohttp.app import HEALTH_KEY, create_app, shutdown
from rpc.transport_aiohttp.state import STATE_KEY, OriginPolicy, ServerState

__all__ = ["HEALTH_KEY", "STATE_KEY", "OriginPolicy", "ServerState", "create_app", "shutdown"]
