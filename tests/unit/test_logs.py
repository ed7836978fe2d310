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
