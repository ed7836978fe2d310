"""The official ``openai`` SDK, signing with FxnAuth, through a real ``fxn start`` node to a fake backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from function_node.client import FxnAuth, verify_response_signature
from function_node.devnet.dev_backend import EMBEDDING_DIM, embedding, reply_tokens
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.node import NodeProcess, model_doc

pytestmark = pytest.mark.integration


@pytest.fixture
def node(
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
    scheduler_signer: LocalSigner,
) -> NodeProcess:
    models = [model_doc("dev-chat", [fake_backend.url], fxnId="7", upstreamModel="upstream/dev-chat")]
    return node_factory(
        models=models, gateways=[gateway_signer.address], schedulers=[scheduler_signer.address]
    )


@pytest.fixture
def sdk(node: NodeProcess, gateway_signer: LocalSigner) -> Iterator[OpenAI]:
    http = httpx.Client(auth=FxnAuth(gateway_signer), timeout=30)
    try:
        # This openai release annotates http_client with its vendored httpx fork; httpx.Client is
        # what it accepts at run time (and what FxnAuth plugs into).
        yield OpenAI(base_url=node.url + "/v1", api_key="-", http_client=http, max_retries=0)  # type: ignore[arg-type]
    finally:
        http.close()


QUESTION = "what is the function network?"
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION}]


def test_chat(sdk: OpenAI, fake_backend: FakeBackend) -> None:
    answer = sdk.chat.completions.create(model="dev-chat", messages=PROMPT, max_tokens=6)
    assert answer.choices[0].message.content == "".join(reply_tokens(QUESTION, 6))
    assert answer.model == "upstream/dev-chat"  # the backend saw the rewritten name
    (seen,) = fake_backend.requests_for("upstream/dev-chat")
    assert not {"x-address", "x-signature", "x-nonce", "x-timestamp"} & {k.lower() for k in seen.headers}


def test_chat_streamed(sdk: OpenAI) -> None:
    stream = sdk.chat.completions.create(model="dev-chat", messages=PROMPT, max_tokens=8, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "".join(reply_tokens(QUESTION, 8))


def test_completions_plain_and_streamed(sdk: OpenAI) -> None:
    plain = sdk.completions.create(model="dev-chat", prompt="once upon", max_tokens=5)
    assert plain.choices[0].text == "".join(reply_tokens("once upon", 5))
    streamed = sdk.completions.create(model="dev-chat", prompt="once upon", max_tokens=5, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == plain.choices[0].text


def test_embeddings(sdk: OpenAI) -> None:
    result = sdk.embeddings.create(model="dev-chat", input=["alpha", "beta"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == EMBEDDING_DIM
    assert result.data[1].embedding == pytest.approx(embedding("beta"), abs=1e-6)


def test_embeddings_float_format(sdk: OpenAI) -> None:
    result = sdk.embeddings.create(model="dev-chat", input="alpha", encoding_format="float")
    assert result.data[0].embedding == pytest.approx(embedding("alpha"), abs=1e-12)


def test_models_list(sdk: OpenAI) -> None:
    models = sdk.models.list()
    assert [(m.id, getattr(m, "fxn_id", None)) for m in models.data] == [("dev-chat", "7")]


def test_post_models_is_the_same_list(node: NodeProcess, gateway_signer: LocalSigner) -> None:
    with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
        posted = http.post(node.url + "/v1/models", content=b"")
        got = http.get(node.url + "/v1/models")
    assert posted.status_code == got.status_code == 200
    assert posted.json() == got.json()
    assert [(m["id"], m["fxn_id"]) for m in posted.json()["data"]] == [("dev-chat", "7")]


def test_unknown_model_is_404(sdk: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="no-such-model", messages=PROMPT)
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"


def test_answer_is_signed_by_the_node(node: NodeProcess, gateway_signer: LocalSigner) -> None:
    body = b'{"model":"dev-chat","messages":[{"role":"user","content":"x"}],"max_tokens":2}'
    with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
        resp = http.post(node.url + "/v1/chat/completions", content=body)
    assert resp.status_code == 200
    assert resp.headers["X-Fxn-Node"] == node.signer.address
    nonce = resp.request.headers["X-Nonce"]
    assert verify_response_signature(
        node.signer.address,
        caller_address=gateway_signer.address,
        request_body=body,
        nonce=nonce,
        status=200,
        body=resp.content,
        signature=resp.headers["X-Fxn-Response-Signature"],
    )


def test_request_log_line(node: NodeProcess, sdk: OpenAI, gateway_signer: LocalSigner) -> None:
    sdk.chat.completions.create(model="dev-chat", messages=PROMPT, max_tokens=2)
    line = node.wait_for_log(lambda d: d.get("event") == "request" and d.get("model") == "dev-chat")
    assert line["route"] == "/v1/chat/completions"
    assert line["status"] == 200
    assert line["caller"] == gateway_signer.address.lower()
    assert len(line["request_id"]) == 16
    assert isinstance(line["latency_ms"], float)
    unsigned = httpx.post(node.url + "/v1/chat/completions", content=b"{}", timeout=10)
    assert unsigned.status_code == 401
    refused = node.wait_for_log(lambda d: d.get("event") == "request" and d.get("status") == 401)
    assert refused["reason"] == "missing_header"
    assert "what is the function network" not in node.process.log_path.read_text()  # no bodies at info
