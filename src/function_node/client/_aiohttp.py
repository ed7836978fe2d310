"""``FxnClientSession``: a thin aiohttp wrapper that signs every request and checks who answered it.

    async with FxnClientSession(key, node_address="0x…") as fxn:
        async with await fxn.request("POST", node + "/v1/chat/completions", json=body) as answer:
            data = await answer.json()          # plain: X-Fxn-Response-Signature checked
            # or: async for chunk in answer.iter_chunks(): ...   (streamed: checked at the end)

The node's address comes from ``node_address`` (what you trust: the provider registry), or is learned
from ``GET /health`` on first use, as with FxnAuth (see ``_discovery``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from yarl import URL

from function_node.client._discovery import HEALTH_PATH, Audience, origin_of
from function_node.client._signer import FxnSigner
from function_node.errors import NodeIdentityError
from function_node.protocol import HEADER_NONCE, ExpectedAnswer, NodeReply, answer_is_signed
from function_node.signing import LocalSigner

__all__ = ["FxnClientSession", "NodeAnswer"]

_SSE = "text/event-stream"


class NodeAnswer:
    """A node's answer whose signature is checked as it is read (when the node's address is known).

    ``read()``/``json()`` read it whole; ``iter_chunks()`` streams it. Either raises
    :class:`~function_node.errors.NodeIdentityError` when the answer is not the expected node's.
    """

    __slots__ = ("_expected", "_strict", "response")

    def __init__(
        self, response: aiohttp.ClientResponse, expected: ExpectedAnswer | None, *, strict: bool = False
    ) -> None:
        self.response = response
        self._expected = expected
        self._strict = strict

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    @property
    def content_type(self) -> str:
        return self.response.content_type

    @property
    def verified(self) -> bool:
        """Whether the answer is checked at all (the node's address is known)."""
        return self._expected is not None

    def signature_problem(self, body: bytes) -> str | None:
        """None when the whole ``body`` of this answer is signed by the expected node (or nothing is
        expected); else what is wrong."""
        if self._expected is None:
            return None
        if self.content_type == _SSE:
            check = self._expected.stream(self.status)
            check.update(body)
            return check.problem()
        return self._expected.check_plain(self.status, self.response.headers, body, strict=self._strict)

    async def read(self) -> bytes:
        body = await self.response.read()
        problem = self.signature_problem(body)
        if problem is not None:
            raise NodeIdentityError(problem)
        return body

    async def reply(self) -> NodeReply:
        """The whole answer, parsed as JSON when it is, with the signature verdict instead of raising."""
        body = await self.response.read()
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
        return NodeReply(self.status, parsed, self.signature_problem(body))

    async def json(self) -> Any:
        return orjson.loads(await self.read())

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; the signature line is checked once the stream ends."""
        check = self._expected.stream(self.status) if self._expected is not None else None
        if check is not None and self.content_type != _SSE:
            yield await self.read()
            return
        async for chunk in self.response.content.iter_any():
            if check is not None:
                check.update(chunk)
            yield chunk
        if check is not None and (problem := check.problem()) is not None:
            raise NodeIdentityError(problem)

    def release(self) -> None:
        self.response.release()

    async def __aenter__(self) -> NodeAnswer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.response.release()


class FxnClientSession:
    """Signs and sends requests over an aiohttp ``ClientSession`` (its own, or one you pass and close).

    ``node_address`` fixes the expected node (v2 audience and answer signer); ``legacy=True`` signs the
    legacy message (answers are still checked when the address is known); ``verify=False`` skips the
    answer checks; ``strict=True`` (the scheduler's) also refuses the unsigned refusals a node gives
    before it verified a request (see ``ExpectedAnswer.check_plain``).
    """

    def __init__(
        self,
        key: LocalSigner | FxnSigner | str,
        node_address: str | None = None,
        *,
        legacy: bool = False,
        discover: bool = True,
        verify: bool = True,
        strict: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.signer = key if isinstance(key, FxnSigner) else FxnSigner(key)
        self._audience = Audience(node_address, discover=discover, legacy=legacy)
        self._verify = verify
        self._strict = strict
        self._session = session
        self._owns_session = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def node_address(self, url: str) -> str | None:
        """The address answers from ``url`` must be signed by (asking ``/health`` once); None: unknown."""
        if self._audience.needs_health(url):
            async with self.session.get(origin_of(url) + HEALTH_PATH) as resp:
                body = await resp.read()
            self._audience.learn(url, resp.status, body)
        return self._audience.expected(url)

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> NodeAnswer:
        """Send a signed request; read and release the answer (``async with``)."""
        body = data if data is not None else (orjson.dumps(json) if json is not None else b"")
        out = dict(headers or {})
        if json is not None and data is None:
            out.setdefault("Content-Type", "application/json")
        node = await self.node_address(url)
        target = URL(url).raw_path_qs
        signed = self.signer.headers(method, target, body, self._audience.audience(url))
        out.update(signed)
        response = await self.session.request(method, url, data=body, headers=out, **kwargs)
        expected = (
            ExpectedAnswer.for_request(node, self.signer.address, body, signed[HEADER_NONCE])
            if node is not None and self._verify and answer_is_signed(URL(url).path)
            else None  # /health, /ready, /metrics: unauthenticated, so unsigned
        )
        return NodeAnswer(response, expected, strict=self._strict)

    async def exchange(self, method: str, url: str, json: Any = None, **kwargs: Any) -> NodeReply:
        """One signed JSON request and its whole answer, with the signature verdict in the reply.

        Transport errors (aiohttp's) and a ``/health`` that contradicts ``node_address``
        (NodeIdentityError) raise; a wrong or missing answer signature does not: see ``signer_problem``.
        """
        async with await self.request(method, url, json=json, **kwargs) as answer:
            return await answer.reply()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FxnClientSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
