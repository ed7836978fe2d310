"""Reading a request body before its signature is checked, without letting anyone hold the node's memory.

The body must be read to verify the signature, so an attacker who knows one public registry address
could otherwise open many connections and send large bodies slowly, holding memory for as long as
they like. Three limits (SPEC §5 step 4) stop that:

* ``auth.maxBodyBytes`` per body (413 ``body_too_large``), known from ``Content-Length`` before
  anything is read, or counted while a chunked body arrives;
* ``auth.bodyReadTimeout`` for the whole body, counted from the end of the headers, not per chunk, so
  trickling one byte at a time does not extend it (408 ``body_timeout``);
* ``auth.maxUnverifiedBodyBytes`` for all not-yet-verified bodies together (503 ``server_busy`` with
  ``Retry-After``): a :class:`BodyBudget` that a body takes from before it is read and gives back once
  its signature has been checked, whatever the outcome.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from function_node.config.settings import AuthSettings
from function_node.protocol import Reason, auth_error

__all__ = ["BodyBudget", "BudgetHold", "read_body"]

_READ_CHUNK: Final = 64 * 1024
_BUSY_RETRY_AFTER_S: Final = 1


class BodyBudget:
    """Bytes that unverified bodies may hold together; each request's share is a :class:`BudgetHold`."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def hold(self) -> BudgetHold:
        """A hold that gives back every byte it took when its ``with`` block ends (an error or a cancel
        included). A plain context manager: an async one would cost a generator per request."""
        return BudgetHold(self)


class BudgetHold:
    """One request's share of the budget."""

    __slots__ = ("_budget", "taken")

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.taken = 0

    def __enter__(self) -> BudgetHold:
        return self

    def __exit__(self, *_: object) -> None:
        self._budget.used -= self.taken
        self.taken = 0

    def take(self, count: int) -> None:
        budget = self._budget
        if budget.used + count > budget.limit:
            raise auth_error(
                Reason.SERVER_BUSY,
                "the node is holding as many unverified request bodies as it allows "
                "(auth.maxUnverifiedBodyBytes); retry shortly",
                headers={"Retry-After": str(_BUSY_RETRY_AFTER_S)},
            )
        budget.used += count
        self.taken += count


async def read_body(request: web.Request, settings: AuthSettings, held: BudgetHold) -> bytes:
    """The request body within the three limits of the module docstring; AuthError when one is broken."""
    limit = settings.max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise auth_error(Reason.BODY_TOO_LARGE, f"the body is {declared} bytes; the limit is {limit}")
    if not request.body_exists:
        return b""
    content = request.content
    if declared is not None and content.is_eof():
        # The whole body came with the headers (nearly every request): no wait, so no deadline to arm.
        held.take(declared)
        try:
            return await content.readexactly(declared)
        except asyncio.IncompleteReadError as exc:
            return exc.partial  # the client sent less than it declared; the signature decides
    try:
        async with asyncio.timeout(settings.body_read_timeout):
            if declared is not None:
                # The common case: one read of exactly the declared length, no copy into a buffer.
                held.take(declared)
                try:
                    return await request.content.readexactly(declared)
                except asyncio.IncompleteReadError as exc:
                    return exc.partial  # the client sent less than it declared; the signature decides
            return await _read_chunked(request, limit, held)
    except TimeoutError:
        raise auth_error(
            Reason.BODY_TIMEOUT,
            f"the body did not arrive within {settings.body_read_timeout:g}s (auth.bodyReadTimeout)",
        ) from None


async def _read_chunked(request: web.Request, limit: int, held: BudgetHold) -> bytes:
    body = bytearray()
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            return bytes(body)
        if len(body) + len(chunk) > limit:
            raise auth_error(Reason.BODY_TOO_LARGE, f"the body exceeds the limit of {limit} bytes")
        held.take(len(chunk))
        body += chunk
