"""The node's Redis clients: one bounded connection pool per store, built the same way everywhere.

Imported only by the stores configured for Redis, so a node on the memory stores never imports redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


def bounded_client(url: str, *, max_connections: int, timeout: float, retry_reconnect: bool) -> Redis:
    """A client on a pool of at most ``max_connections`` connections to ``url``.

    A burst of requests waits (up to ``timeout``) for a pooled connection instead of opening one per
    request; ``timeout`` also bounds connecting and every command. ``retry_reconnect`` retries a command
    once on a connection error, which replaces a pooled connection that died with a restarted Redis;
    a timeout is never retried, because the command may have reached Redis.
    """
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)) if retry_reconnect else None
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=retry,
    )
    return AsyncRedis.from_pool(pool)
