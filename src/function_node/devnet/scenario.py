"""The devnet's checks once everything runs: readiness, a signed streamed chat completion through the
official ``openai`` SDK, a replay refused by the (shared) nonce store, and the scheduler's verdicts.

Each step returns :class:`Row` values for the summary table instead of raising, so one failure is
reported beside everything that worked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from function_node.signing import LocalSigner

__all__ = ["Row", "chat_completion", "replay_refused", "scheduler_rows", "wait_ready", "wait_scheduler_round"]

_POLL_S: Final = 0.1


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the summary: what, where it listens (or its file), passed (None: informational)."""

    component: str
    where: str
    ok: bool | None
    detail: str = ""


def wait_ready(url: str, timeout: float, alive: Callable[[], bool]) -> dict[str, Any]:
    """Poll ``GET /ready`` until it answers 200; RuntimeError with the last answer otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"the node at {url} exited before it was ready")
            try:
                resp = client.get(url + "/ready")
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                if resp.status_code == 200:
                    answer: dict[str, Any] = resp.json()
                    return answer
                last = f"{resp.status_code} {resp.text[:300]}"
            time.sleep(_POLL_S)
    raise RuntimeError(f"the node at {url} was not ready within {timeout:.0f}s: {last}")


def chat_completion(node_url: str, node_address: str, gateway: LocalSigner, model: str) -> Row:
    """A streamed chat completion signed as the gateway (v2, bound to the node) through the openai SDK."""
    from openai import OpenAI, OpenAIError

    from function_node.client import FxnAuth, NodeIdentityError

    started = time.perf_counter()
    with httpx.Client(auth=FxnAuth(gateway, node_address=node_address), timeout=30.0) as http:
        # openai 3.x annotates http_client as an httpx2 client but accepts an httpx one (checked at runtime).
        client = OpenAI(base_url=node_url + "/v1", api_key="-", http_client=http, max_retries=0)  # type: ignore[arg-type]
        try:
            stream = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Hello from the devnet"}],
                max_tokens=8,
                stream=True,
            )
            pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        except (OpenAIError, NodeIdentityError) as exc:  # NodeIdentityError: not signed by the node
            return Row(
                "chat completion (openai SDK, streamed)", node_url, False, f"{type(exc).__name__}: {exc}"
            )
    text = "".join(pieces)
    seconds = time.perf_counter() - started
    if not text:
        return Row("chat completion (openai SDK, streamed)", node_url, False, "the stream carried no text")
    detail = f"{len(pieces)} chunks in {seconds * 1000:.0f} ms: {text[:40]!r}"
    return Row("chat completion (openai SDK, streamed)", node_url, True, detail)


def replay_refused(first_url: str, second_url: str, gateway: LocalSigner, model: str) -> Row:
    """Send one signed request to ``first_url``, then the very same bytes and headers to ``second_url``:
    the second must be refused with 401 ``replayed_nonce`` (across replicas only with a shared store)."""
    from function_node.client import FxnSigner

    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "once"}], "max_tokens": 2})
    # Legacy form on purpose: it binds no node, which is exactly the replay the nonce store must stop.
    headers = FxnSigner(gateway).headers("POST", "/v1/chat/completions", body)
    headers["Content-Type"] = "application/json"
    where = f"{first_url} then {second_url}"
    name = "replay to the second replica" if first_url != second_url else "replay to the same node"
    with httpx.Client(timeout=30.0) as client:
        first = client.post(first_url + "/v1/chat/completions", content=body, headers=headers)
        if first.status_code != 200:
            return Row(
                name, where, False, f"the original request got {first.status_code}: {first.text[:200]}"
            )
        second = client.post(second_url + "/v1/chat/completions", content=body, headers=headers)
    code = ""
    try:
        code = str(second.json().get("error", {}).get("code", ""))
    except (ValueError, AttributeError):
        code = ""
    if second.status_code == 401 and code == "replayed_nonce":
        return Row(name, where, True, "first 200, replay 401 replayed_nonce")
    return Row(name, where, False, f"the replay got {second.status_code} {code or second.text[:120]}")


def wait_scheduler_round(database: Path, timeout: float, alive: Callable[[], bool]) -> None:
    """Wait until the scheduler process has finished its first round in its SQLite store."""
    from function_node.scheduler.store import SchedulerStore

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if database.exists():
            with SchedulerStore(database) as store:
                if any(finished is not None for _, _, finished, _ in store.rounds()):
                    return
        if not alive():
            raise RuntimeError("the scheduler exited before finishing a round")
        time.sleep(_POLL_S)
    raise RuntimeError(f"the scheduler did not finish a round within {timeout:.0f}s")


def scheduler_rows(database: Path) -> list[Row]:
    """One row per node and check from the scheduler's latest round."""
    from function_node.scheduler.store import SchedulerStore

    rows: list[Row] = []
    with SchedulerStore(database) as store:
        for node in store.summaries():
            for r in node.results:
                figures = _figures(r.values, r.rtt_ms)
                detail = r.detail if r.ok else f"{r.reason}: {r.detail}"
                rows.append(Row(f"scheduler: {r.check}", node.node_url, r.ok, f"{detail}{figures}"[:160]))
    if not rows:
        rows.append(Row("scheduler", str(database), False, "the scheduler found no node to probe"))
    return rows


def _figures(values: dict[str, Any], rtt_ms: float | None) -> str:
    parts = [f"{rtt_ms:.0f} ms"] if rtt_ms is not None else []
    if isinstance(values.get("tops"), int | float):
        parts.append(f"{values['tops'] * 1000:.2f} GOPS (scheduler RTT bound)")
    if isinstance(values.get("verify_ms"), int | float):
        parts.append(f"verified in {values['verify_ms']:.0f} ms")
    if isinstance(values.get("ttft_ms"), int | float):
        parts.append(f"TTFT {values['ttft_ms']:.0f} ms")
    return f" ({', '.join(parts)})" if parts else ""
