"""FxnAuth's checked streams against a reader that stops at ``data: [DONE]``, as the openai SDK does (the
sync client closes the answer there without reading on): the node's signature line after it is still
read and checked, however the bytes are split into chunks on the way.

The streams are real node-signed answers (AnswerSigner with the development node key), split at every
byte offset; a tampered one flips one byte of its first event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Final

import httpx
import pytest

from function_node.client import NodeIdentityError
from function_node.client._httpx import _AsyncCheckedStream, _SyncCheckedStream
from function_node.protocol import AnswerSigner, ExpectedAnswer, StreamCheck
from function_node.signing import LocalSigner, body_sha256
from tests.fixtures.common import DEV_KEYS

NODE: Final = LocalSigner.from_hex(DEV_KEYS[2])
CALLER: Final = LocalSigner.from_hex(DEV_KEYS[0]).address
REQUEST: Final = b'{"model":"m","stream":true}'
NONCE: Final = "n-1"
DONE: Final = b"data: [DONE]\n\n"
EVENTS: Final = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n' + DONE


def signed_wire(body: bytes = EVENTS) -> bytes:
    signer = AnswerSigner(NODE, CALLER, body_sha256(REQUEST), NONCE).stream(200)
    signer.update(body)
    return body + signer.line()


WIRE: Final = signed_wire()
TAMPERED: Final = WIRE[:20] + bytes((WIRE[20] ^ 0x20,)) + WIRE[21:]  # inside the first event
# Every offset around [DONE] (where a split decides whether the reader stops before the line), and a
# sample of offsets inside the first event and inside the signature line.
_DONE_AT: Final = len(EVENTS) - len(DONE)
SPLITS: Final = sorted(
    {
        1,
        10,
        20,
        30,
        *range(_DONE_AT - 2, len(EVENTS) + 3),
        *range(len(EVENTS) + 3, len(WIRE), 16),
        len(WIRE) - 1,
    }
)


class ChunksForTests(httpx.SyncByteStream, httpx.AsyncByteStream):
    """TEST ONLY: an answer body that arrives in exactly these chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def check() -> StreamCheck:
    return ExpectedAnswer.for_request(NODE.address, CALLER, REQUEST, NONCE).stream(200)


def read_until_done(stream: _SyncCheckedStream) -> bytes:
    """What the sync SDK does: read until [DONE], then close the answer."""
    seen = b""
    for chunk in stream:
        seen += chunk
        if DONE in seen:
            break
    stream.close()
    return seen


async def aread_until_done(stream: _AsyncCheckedStream) -> bytes:
    seen = b""
    async for chunk in stream:
        seen += chunk
        if DONE in seen:
            break
    await stream.aclose()
    return seen


def test_the_vectors_here_are_a_valid_signed_stream_and_a_tampered_one() -> None:
    assert WIRE.startswith(EVENTS) and WIRE[len(EVENTS) :].startswith(b": fxn-signature 0x")
    assert TAMPERED != WIRE and len(TAMPERED) == len(WIRE)


@pytest.mark.parametrize("at", SPLITS)
def test_sync_reader_stopping_at_done_gets_the_checked_whole(at: int) -> None:
    inner = ChunksForTests(WIRE[:at], WIRE[at:])
    assert read_until_done(_SyncCheckedStream(inner, check())) == WIRE
    assert inner.closed


@pytest.mark.parametrize("at", SPLITS)
def test_sync_reader_stopping_at_done_meets_a_tampered_stream(at: int) -> None:
    stream = _SyncCheckedStream(ChunksForTests(TAMPERED[:at], TAMPERED[at:]), check())
    with pytest.raises(
        NodeIdentityError, match=rf"^the stream's signature line is not {NODE.address.lower()}'s$"
    ):
        read_until_done(stream)


@pytest.mark.parametrize("at", SPLITS)
async def test_async_reader_stopping_at_done_gets_the_checked_whole(at: int) -> None:
    inner = ChunksForTests(WIRE[:at], WIRE[at:])
    assert await aread_until_done(_AsyncCheckedStream(inner, check())) == WIRE


@pytest.mark.parametrize("at", SPLITS)
async def test_async_reader_stopping_at_done_meets_a_tampered_stream(at: int) -> None:
    stream = _AsyncCheckedStream(ChunksForTests(TAMPERED[:at], TAMPERED[at:]), check())
    with pytest.raises(NodeIdentityError, match=r"^the stream's signature line is not"):
        await aread_until_done(stream)


def test_a_stream_cut_right_after_done_is_refused() -> None:
    stream = _SyncCheckedStream(ChunksForTests(EVENTS), check())
    with pytest.raises(NodeIdentityError, match=r"^the stream does not end with a ': fxn-signature' line$"):
        read_until_done(stream)


def test_one_byte_chunks_are_checked_too() -> None:
    chunks = [TAMPERED[i : i + 1] for i in range(len(TAMPERED))]
    with pytest.raises(NodeIdentityError):
        read_until_done(_SyncCheckedStream(ChunksForTests(*chunks), check()))
    chunks = [WIRE[i : i + 1] for i in range(len(WIRE))]
    assert read_until_done(_SyncCheckedStream(ChunksForTests(*chunks), check())) == WIRE
