"""The official ``openai`` SDK, sync and async, through a real ``fxn start`` node with
``FxnAuth(key, node_address=<the node>)``: streamed and plain answers arrive unchanged and verified, and a
proxy in between that changes one byte of an answer makes the SDK call raise NodeIdentityError (SPEC §5, §9).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from function_node.client import FxnAuth, NodeIdentityError
from function_node.devnet.dev_backend import reply_tokens
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.node import NodeProcess, model_doc
from tests.fixtures.relay import RelayNode, flip_first

pytestmark = pytest.mark.integration

MODEL: Final = "dev-chat"
QUESTION: Final = "who signed this answer?"
PROMPT: Final[list[ChatCompletionMessageParam]] = [{"role": "user", "content": QUESTION}]
TOKENS: Final = 8
# What the backend sends, chunk by chunk: the role chunk (empty content), the tokens, the finish chunk.
CONTENTS: Final = ["", *reply_tokens(QUESTION, TOKENS), None]
# The tampering proxy flips the case of one letter: the first model name ("dev-chat" -> "Dev-chat").
TAMPER: Final = flip_first(b'"model":"')


@pytest.fixture
def node(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess], gateway_signer: LocalSigner
) -> NodeProcess:
    return node_factory(
        models=[model_doc(MODEL, [fake_backend.url])], gateways=[gateway_signer.address], schedulers=[]
    )


@pytest.fixture
def tampering_proxy(node: NodeProcess) -> Iterator[RelayNode]:
    """Forwards everything, /health included (the caller sees the real node), changing one byte per answer."""
    proxy = RelayNode(node.url, tamper=TAMPER).start()
    try:
        yield proxy
    finally:
        proxy.stop()


# openai annotates http_client with its vendored httpx fork (httpx2); it accepts httpx's clients at run
# time, which is what FxnAuth plugs into: the type: ignore comments below are for that annotation only.
def sync_sdk(base: str, auth: FxnAuth) -> tuple[openai.OpenAI, httpx.Client]:
    http = httpx.Client(auth=auth, timeout=30)
    sdk = openai.OpenAI(base_url=base + "/v1", api_key="-", http_client=http, max_retries=0)  # type: ignore[arg-type]
    return sdk, http


def async_sdk_for(base: str, http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base + "/v1", api_key="-", http_client=http, max_retries=0)  # type: ignore[arg-type]


@pytest.fixture
def sdk(node: NodeProcess, gateway_signer: LocalSigner) -> Iterator[openai.OpenAI]:
    client, http = sync_sdk(node.url, FxnAuth(gateway_signer, node_address=node.signer.address))
    with http:
        yield client


@pytest.fixture
async def async_sdk(node: NodeProcess, gateway_signer: LocalSigner) -> AsyncIterator[openai.AsyncOpenAI]:
    async with httpx.AsyncClient(
        auth=FxnAuth(gateway_signer, node_address=node.signer.address), timeout=30
    ) as http:
        yield async_sdk_for(node.url, http)


# -- through the node, verified ---------------------------------------------------------------------------


def test_sync_stream_arrives_chunk_for_chunk_and_verified(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=TOKENS, stream=True)
    chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks] == CONTENTS
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"
    assert {c.model for c in chunks} == {MODEL}


async def test_async_stream_arrives_chunk_for_chunk_and_verified(async_sdk: openai.AsyncOpenAI) -> None:
    stream = await async_sdk.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=TOKENS, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert [c.choices[0].delta.content for c in chunks] == CONTENTS
    assert {c.model for c in chunks} == {MODEL}


def test_sync_plain_answer_verified(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=TOKENS)
    assert (answer.model, answer.choices[0].message.content) == (MODEL, "".join(CONTENTS[1:-1]))  # type: ignore[arg-type]


async def test_async_plain_answer_verified(async_sdk: openai.AsyncOpenAI) -> None:
    answer = await async_sdk.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=TOKENS)
    assert (answer.model, answer.choices[0].message.content) == (MODEL, "".join(CONTENTS[1:-1]))  # type: ignore[arg-type]


# -- one byte changed on the way ---------------------------------------------------------------------------


def test_sync_stream_with_one_byte_changed_raises(
    tampering_proxy: RelayNode, node: NodeProcess, gateway_signer: LocalSigner
) -> None:
    client, http = sync_sdk(tampering_proxy.url, FxnAuth(gateway_signer, node_address=node.signer.address))
    received: list[openai.types.chat.ChatCompletionChunk] = []
    with http:
        stream = client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=TOKENS, stream=True)
        with pytest.raises(NodeIdentityError) as caught:
            received.extend(stream)
    assert str(caught.value) == f"the stream's signature line is not {node.signer.address.lower()}'s"
    # FxnAuth reads the line after [DONE] (where the SDK stops reading) before it hands [DONE] on; how
    # many chunks came before depends on how the bytes were split on the way.
    assert [c.choices[0].delta.content for c in received] == CONTENTS[: len(received)]
    assert tampering_proxy.seen == ["POST /v1/chat/completions"]


async def test_async_stream_with_one_byte_changed_raises(
    tampering_proxy: RelayNode, node: NodeProcess, gateway_signer: LocalSigner
) -> None:
    auth = FxnAuth(gateway_signer, node_address=node.signer.address)
    received: list[openai.types.chat.ChatCompletionChunk] = []
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        client = async_sdk_for(tampering_proxy.url, http)
        stream = await client.chat.completions.create(
            model=MODEL, messages=PROMPT, max_tokens=TOKENS, stream=True
        )
        with pytest.raises(NodeIdentityError) as caught:
            async for chunk in stream:
                received.append(chunk)
    assert str(caught.value) == f"the stream's signature line is not {node.signer.address.lower()}'s"
    assert [c.choices[0].delta.content for c in received] == CONTENTS[: len(received)]


def test_sync_plain_answer_with_one_byte_changed_raises(
    tampering_proxy: RelayNode, node: NodeProcess, gateway_signer: LocalSigner
) -> None:
    client, http = sync_sdk(tampering_proxy.url, FxnAuth(gateway_signer, node_address=node.signer.address))
    with http, pytest.raises(NodeIdentityError) as caught:
        client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=TOKENS)
    expected = node.signer.address.lower()
    assert str(caught.value) == f"X-Fxn-Response-Signature of the answer (HTTP 200) is not {expected}'s"


async def test_async_plain_answer_with_one_byte_changed_raises(
    tampering_proxy: RelayNode, node: NodeProcess, gateway_signer: LocalSigner
) -> None:
    auth = FxnAuth(gateway_signer, node_address=node.signer.address)
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        client = async_sdk_for(tampering_proxy.url, http)
        with pytest.raises(NodeIdentityError) as caught:
            await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=TOKENS)
    expected = node.signer.address.lower()
    assert str(caught.value) == f"X-Fxn-Response-Signature of the answer (HTTP 200) is not {expected}'s"
