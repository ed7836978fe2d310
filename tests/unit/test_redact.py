"""redact_url / redact_text: no credentials, query or RPC path survive; harmless URLs stay readable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from function_node.redact import redact_text, redact_url

KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://user:pw@mainnet.infura.io/v3/{KEY}?x=1", "https://***@mainnet.infura.io/***?***"),
        (f"https://eth-mainnet.g.alchemy.com/v2/{KEY}", "https://eth-mainnet.g.alchemy.com/***"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545/"),
        ("redis://:s3cret@10.0.0.5:6379/0", "redis://***@10.0.0.5:6379/***"),
        ("http://[::1]:8545/rpc", "http://[::1]:8545/***"),
        (f"wss://node.example#{KEY}", "wss://node.example?***"),
        ("http://host:99999/x", "***"),  # not even a valid URL: nothing of it is shown
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_keep_path_keeps_a_backend_path_but_not_its_credentials_or_query() -> None:
    assert (
        redact_url("http://u:p@127.0.0.1:8000/v1?key=1", keep_path=True) == "http://***@127.0.0.1:8000/v1?***"
    )


def test_redact_text_redacts_each_url_in_a_sentence() -> None:
    line = f"Successfully disconnected from: https://mainnet.infura.io/v3/{KEY}."
    assert redact_text(line) == "Successfully disconnected from: https://mainnet.infura.io/***."
    two = f"tried (http://a:b@x:1/{KEY}), then 'ws://y/z/{KEY}'"
    assert redact_text(two) == "tried (http://***@x:1/***), then 'ws://y/***'"
    assert redact_text("no url here: 127.0.0.1:8545") == "no url here: 127.0.0.1:8545"


@given(
    user=st.text("abcdefXYZ019", min_size=1, max_size=8),
    secret=st.text("abcdefXYZ019-_", min_size=8, max_size=40),
    host=st.sampled_from(["rpc.example.org", "127.0.0.1:8545", "[::1]:1"]),
)
def test_no_secret_survives_in_text(user: str, secret: str, host: str) -> None:
    text = f"GET http://{user}:{secret}@{host}/v3/{secret}?apikey={secret} failed"
    assert secret not in redact_text(text)
