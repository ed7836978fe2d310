"""What one ``/v1/*`` request's answer used, gathered on the request path for the ledger (SPEC §11).

The metering middleware puts a :class:`Meter` on the request; the proxy handler names the model and
says whether the node asked for the stream's usage itself; the relay adds the upstream time and the
answer's usage (a plain answer's ``usage``, or the stream's through its :class:`StreamUsageTap`).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from function_node.node.usage_parse import StreamUsageTap, Usage, usage_of_json

__all__ = ["METER", "NO_MODEL", "Meter", "meter_of"]

NO_MODEL: Final = "-"  # the ledger's model of a request that named no model this node serves


class Meter:
    __slots__ = ("model", "strip_usage", "tap", "upstream_seconds", "usage")

    def __init__(self) -> None:
        self.model = NO_MODEL
        self.strip_usage = False  # the node added stream_options.include_usage: hold the usage event back
        self.tap: StreamUsageTap | None = None
        self.upstream_seconds = 0.0
        self.usage: Usage | None = None

    def stream_tap(self) -> StreamUsageTap:
        self.tap = StreamUsageTap(strip=self.strip_usage)
        return self.tap

    def take_json(self, body: bytes) -> None:
        self.usage = usage_of_json(body)

    def final_usage(self) -> Usage | None:
        """The answer's usage, once it is finished (or cut): None when the backend reported none."""
        if self.usage is None and self.tap is not None:
            self.usage = self.tap.finish()
        return self.usage


METER: Final = web.RequestKey("fxn_meter", Meter)


def meter_of(request: web.Request) -> Meter | None:
    return request.get(METER)
