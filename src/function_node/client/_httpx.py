"""``FxnAuth``: an ``httpx.Auth`` that signs every request and checks who answered it, so the official
``openai`` SDK can call a node::

    OpenAI(base_url=node + "/v1", api_key="-",
           http_client=httpx.Client(auth=FxnAuth(key, node_address="0x…")))

It works with ``httpx.Client`` and ``httpx.AsyncClient``. It signs the exact body bytes and path that go
on the wire (httpx hands the auth flow the final request). When the node's address is known (given,
or learned from ``/health`` on first use) every answer must be signed by it: a plain answer is read and
its ``X-Fxn-Response-Signature`` checked before it is returned; a streamed answer is checked as it is
read, and its last line must be the node's ``: fxn-signature``. A wrong or missing signature raises
:class:`~function_node.errors.NodeIdentityError`. The one answer that is not signed is a refusal from
before the node verified the request (unknown caller, bad signature, …: it carries no ``X-Fxn-Node``);
it is returned as the error it is, so the SDK raises its usual error for it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator

import httpx

from function_node.client._discovery import HEALTH_PATH, Audience
from function_node.client._signer import FxnSigner
from function_node.errors import NodeIdentityError
from function_node.protocol import HEADER_NONCE, ExpectedAnswer, StreamCheck, answer_is_signed
from function_node.signing import LocalSigner

__all__ = ["FxnAuth"]

_SSE = "text/event-stream"
_DONE_EVENT = b"data: [DONE]\n\n"


class FxnAuth(httpx.Auth):
    """Sign each request with ``key`` (a LocalSigner, an FxnSigner or a hex private key).

    ``node_address`` is the node's address from what you trust (its provider registry entry): requests
    are signed v2 for it, a ``/health`` that claims another address makes the first request fail
    before anything is sent, and every answer must carry its signature. Without it, and with
    ``discover`` (the default), the first request to a node is preceded by one ``GET /health`` at the
    node's origin, whose address is then trusted on first use. ``verify=False`` skips the answer checks.
    """

    requires_request_body = True

    def __init__(
        self,
        key: LocalSigner | FxnSigner | str,
        node_address: str | None = None,
        *,
        discover: bool = True,
        verify: bool = True,
    ) -> None:
        self.signer = key if isinstance(key, FxnSigner) else FxnSigner(key)
        self._audience = Audience(node_address, discover=discover)
        self._verify = verify

    def node_address(self, url: str) -> str | None:
        """The node address this auth signs for, and expects answers from, at ``url`` (None: legacy)."""
        return self._audience.expected(url)

    def _health_request(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(raw_path=HEALTH_PATH.encode(), query=None, fragment=None)
        return httpx.Request("GET", url, extensions=request.extensions)

    def _sign(self, request: httpx.Request) -> ExpectedAnswer | None:
        url = str(request.url)
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            self.signer.headers(request.method, target, request.content, self._audience.audience(url))
        )
        node = self._audience.expected(url)
        if node is None or not self._verify or not answer_is_signed(request.url.path):
            return None  # /health, /ready, /metrics: unauthenticated, so unsigned
        nonce = request.headers[HEADER_NONCE]
        return ExpectedAnswer.for_request(node, self.signer.address, request.content, nonce)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        if self._audience.needs_health(str(request.url)):
            # A transport error here reaches the caller, as it would for the request itself.
            health = yield self._health_request(request)
            health.read()
            self._audience.learn(str(request.url), health.status_code, health.content)
        expected = self._sign(request)
        response = yield request
        if expected is None:
            return
        if _is_stream(response):
            response.stream = _SyncCheckedStream(response.stream, expected.stream(response.status_code))
            return
        response.read()
        _raise_for(expected.check_plain(response.status_code, response.headers, response.content))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        if self._audience.needs_health(str(request.url)):
            health = yield self._health_request(request)
            await health.aread()
            self._audience.learn(str(request.url), health.status_code, health.content)
        expected = self._sign(request)
        response = yield request
        if expected is None:
            return
        if _is_stream(response):
            response.stream = _AsyncCheckedStream(response.stream, expected.stream(response.status_code))
            return
        await response.aread()
        _raise_for(expected.check_plain(response.status_code, response.headers, response.content))


def _is_stream(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("Content-Type", ""))
    return content_type.split(";", 1)[0].strip().lower() == _SSE


def _raise_for(problem: str | None) -> None:
    if problem is not None:
        raise NodeIdentityError(problem)


class _DoneWatch:
    """Whether a stream has reached ``data: [DONE]``. The openai SDK stops reading there (the sync client
    closes the answer at once), so the node's signature line after it would never be read and the
    stream never checked: the checked streams read that last line before they hand the event on."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def reached(self, chunk: bytes) -> bool:
        seen = _DONE_EVENT in chunk or _DONE_EVENT in self._tail + chunk[: len(_DONE_EVENT)]
        self._tail = (self._tail + chunk[-len(_DONE_EVENT) :])[-len(_DONE_EVENT) :]
        return seen


class _SyncCheckedStream(httpx.SyncByteStream):
    """The raw (transfer-decoded) stream, checked as it is read; raises at its end when unsigned."""

    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream, check: StreamCheck) -> None:
        if not isinstance(inner, httpx.SyncByteStream):
            raise TypeError("a sync client's response has a sync stream")
        self._inner = inner
        self._check = check

    def __iter__(self) -> Iterator[bytes]:
        done = _DoneWatch()
        chunks = iter(self._inner)
        for chunk in chunks:
            self._check.update(chunk)
            if done.reached(chunk):
                rest = b"".join(chunks)  # only the signature line is left
                self._check.update(rest)
                _raise_for(self._check.problem())
                yield chunk + rest
                return
            yield chunk
        _raise_for(self._check.problem())

    def close(self) -> None:
        self._inner.close()


class _AsyncCheckedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream, check: StreamCheck) -> None:
        if not isinstance(inner, httpx.AsyncByteStream):
            raise TypeError("an async client's response has an async stream")
        self._inner = inner
        self._check = check

    async def __aiter__(self) -> AsyncIterator[bytes]:
        done = _DoneWatch()
        chunks = aiter(self._inner)
        async for chunk in chunks:
            self._check.update(chunk)
            if done.reached(chunk):
                rest = b"".join([c async for c in chunks])  # only the signature line is left
                self._check.update(rest)
                _raise_for(self._check.problem())
                yield chunk + rest
                return
            yield chunk
        _raise_for(self._check.problem())

    async def aclose(self) -> None:
        await self._inner.aclose()
