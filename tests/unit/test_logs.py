"""configure_logging: the verbosity filters lines, the format picks the renderer, the stream is used."""

from __future__ import annotations

import io
import json

import pytest

from function_node.logs import configure_logging, get_logger

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_warn_drops_info_and_debug_lines() -> None:
    out = io.StringIO()
    configure_logging("warn", "json", stream=out)
    log = get_logger("fxn.test")
    log.debug("too_chatty")
    log.info("routine", n=1)
    log.warning("worth_a_look", n=2)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line["level"], line["n"]) for line in lines] == [("worth_a_look", "warning", 2)]


def test_info_keeps_info_lines() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    get_logger("fxn.test").info("routine", n=1)
    (line,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (line["event"], line["level"], line["n"]) == ("routine", "info", 1)
    assert line["timestamp"].endswith("Z")


def test_console_format_renders_a_readable_line() -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    get_logger("fxn.test").info("node_started", port=8080)
    (line,) = out.getvalue().splitlines()
    assert "[info     ] node_started" in line and "port=8080" in line
    assert not line.startswith("{")  # a console line, not JSON


def test_auto_format_is_json_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    get_logger("fxn.test").info("piped")
    assert json.loads(out.getvalue())["event"] == "piped"


RPC_KEY = "0123456789abcdef0123456789abcdef"


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON, or this raises
    assert all(isinstance(line, dict) for line in lines)
    return lines


async def test_web3s_own_disconnect_line_is_not_written_at_info() -> None:
    from web3 import AsyncHTTPProvider

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    provider = AsyncHTTPProvider(f"http://user:pw@127.0.0.1:1/v3/{RPC_KEY}")
    await provider.disconnect()  # web3 logs "Successfully disconnected from: <the URL>" at info
    get_logger("fxn.test").info("after")
    assert [line["event"] for line in _json_lines(out.getvalue())] == ["after"]


async def test_at_debug_library_lines_are_json_and_redacted() -> None:
    from web3 import AsyncHTTPProvider

    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    provider = AsyncHTTPProvider(f"http://user:pw@127.0.0.1:1/v3/{RPC_KEY}")
    await provider.disconnect()
    text = out.getvalue()
    assert RPC_KEY not in text and "user:pw" not in text
    (line,) = [x for x in _json_lines(text) if x.get("logger") == "web3.providers.AsyncHTTPProvider"]
    assert line["event"] == "Successfully disconnected from: http://***@127.0.0.1:1/***"
    assert line["level"] == "info"


def test_a_library_error_with_a_traceback_is_one_json_line() -> None:
    import logging

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        raise ConnectionError(f"lost https://rpc.example/v3/{RPC_KEY}")
    except ConnectionError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    (line,) = _json_lines(out.getvalue())
    assert (line["event"], line["level"], line["logger"]) == (
        "Error handling request",
        "error",
        "aiohttp.server",
    )
    assert "ConnectionError: lost https://rpc.example/***" in str(line["exception"])
    assert RPC_KEY not in out.getvalue()


def test_our_own_lines_are_redacted_too() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    get_logger("fxn.test").warning(
        "rpc failed", url=f"https://a:b@rpc.example/v3/{RPC_KEY}", tried=[f"ws://x/{RPC_KEY}"]
    )
    (line,) = _json_lines(out.getvalue())
    assert (line["url"], line["tried"]) == ("https://***@rpc.example/***", ["ws://x/***"])


def test_a_library_warning_is_a_json_line() -> None:
    import warnings

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library is unhappy", UserWarning, stacklevel=1)
    (line,) = _json_lines(out.getvalue())
    assert (line["logger"], line["level"]) == ("py.warnings", "warning")
    assert "UserWarning: a library is unhappy" in str(line["event"])
