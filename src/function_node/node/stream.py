"""Relaying a backend's event stream (SSE) to the client, chunk by chunk, and signing it at the end.

The bytes are relayed exactly as they arrive (no re-chunking, no re-encoding), through the request's
:class:`~function_node.node.usage_parse.StreamUsageTap`, which takes the stream's usage and, when the
node asked for it itself, holds that one event back (SPEC §6). After the last of them
the node writes one SSE comment, ``: fxn-signature 0x…``, whose signature covers every byte relayed
before it (SPEC §5); SSE clients ignore comment lines. How a stream ends:

* the backend finished it: its bytes up to ``data: [DONE]``, then the signature line, at once (the node
  does not wait for the backend to close its answer);
* the backend broke it (a transport error, a timeout) or sent a 200 with no event at all: the node's
  own SSE error event (after closing a half-written event), then the signature line;
* the client left: nothing more is written and the upstream answer is closed at once (the caller's
  ``finally``), which the backend sees as the request being cancelled. A client that leaves after the
  backend finished (the openai SDK hangs up right after ``[DONE]``) got everything: a normal end, logged
  and counted with the stream's status, not as 499.
"""

from __future__ import annotations

import enum
import time
from typing import Final

import aiohttp
import orjson
from aiohttp import web

from function_node.metrics import NodeMetrics
from function_node.node.auth import answer_signer_of
from function_node.node.backends import Backend, BackendPool
from function_node.node.meter import meter_of

__all__ = ["STREAM_OUTCOME", "StreamOutcome", "relay_stream", "stream_error_event"]

_EVENT_END: Final = b"\n\n"
_DATA_FIELD: Final = b"data:"
_DONE_EVENT: Final = b"data: [DONE]\n\n"
_TAIL_KEPT: Final = 64  # enough of the relayed bytes to see the [DONE] event across chunk boundaries


class StreamOutcome(enum.Enum):
    COMPLETE = "complete"  # the backend ended the stream; the client got all of it
    BACKEND_FAILED = "backend_failed"  # ended with the node's error event
    CLIENT_GONE = "client_gone"  # the client left before the end


STREAM_OUTCOME: Final = web.RequestKey("fxn_stream_outcome", StreamOutcome)


def stream_error_event(message: str) -> bytes:
    body = {"error": {"message": message, "type": "upstream_error", "code": "backend_stream_interrupted"}}
    return b"data: " + orjson.dumps(body) + _EVENT_END


async def relay_stream(
    request: web.Request,
    out: web.StreamResponse,
    first: bytes,
    *,
    resp: aiohttp.ClientResponse,
    pool: BackendPool,
    backend: Backend,
    started: float,
    metrics: NodeMetrics,
) -> web.StreamResponse:
    """Relay ``first`` and the rest of ``resp`` into the prepared ``out``; returns ``out``."""
    answer_signer = answer_signer_of(request)
    signature = answer_signer.stream(out.status) if answer_signer is not None else None
    meter = meter_of(request)
    tap = meter.stream_tap() if meter is not None else None
    content = resp.content
    chunk = first
    last = b""
    saw_data = False
    failure = kind = ""
    try:
        while chunk:
            relayed = tap.feed(chunk) if tap is not None else chunk
            if relayed:
                await out.write(relayed)
                if signature is not None:
                    signature.update(relayed)
            saw_data = saw_data or _DATA_FIELD in chunk
            last = (last + chunk)[-_TAIL_KEPT:]
            if last.endswith(_DONE_EVENT):
                # The stream is complete: end it now rather than wait for the backend to close its
                # answer (the openai SDK hangs up right after [DONE]; that is a normal end).
                break
            try:
                chunk = await content.readany()
            except aiohttp.SocketTimeoutError:
                failure = f"the backend sent nothing for {pool.timeout.sock_read:g}s (timeouts.firstByte)"
                kind = "midstream_timeout"
                break
            except TimeoutError:
                failure = f"the answer took longer than {pool.timeout.total:g}s (timeouts.total)"
                kind = "total_timeout"
                break
            except aiohttp.ClientError as exc:
                failure, kind = f"the backend broke the stream ({type(exc).__name__})", "midstream"
                break
        if not failure and not saw_data:
            failure, kind = "the backend answered with an empty event stream", "empty_stream"
        # An event the tap still holds (the backend stopped inside it) is the backend's: relay it.
        tail = tap.flush() if tap is not None else b""
        if failure:
            backend.error(metrics, kind)
            # Close any event the backend left half-written, so the error event parses on its own.
            tail += (b"" if not last or last.endswith(_EVENT_END) else _EVENT_END) + stream_error_event(
                failure
            )
        if tail and signature is not None:
            signature.update(tail)
        request[STREAM_OUTCOME] = StreamOutcome.BACKEND_FAILED if failure else StreamOutcome.COMPLETE
        backend.latency_metric.observe(time.perf_counter() - started)
    except ConnectionResetError:
        request[STREAM_OUTCOME] = StreamOutcome.CLIENT_GONE
        return out
    try:
        await out.write(tail + signature.line() if signature is not None else tail)
        await out.write_eof()
    except ConnectionResetError:
        pass  # the client left after the backend's last byte: it has the whole answer
    return out
