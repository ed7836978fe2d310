"""The package's exception tree and the OpenAI-shaped error body.

Every error the package raises on purpose derives from :class:`FxnError`::

    FxnError
    ├── ConfigError          a config.yaml / backend.yaml problem (exit code 2); carries ConfigProblem items
    ├── KeyFileError         a key file that is missing, unreadable, insecure or cannot be decrypted
    ├── SigningError         a malformed signature or message part
    ├── NodeIdentityError    a node is not the one the client expects: /health or an answer's signature
    ├── UsageError           a command's option or argument is unusable (exit code 2)
    ├── ChainError           the JSON-RPC provider(s) failed; names the URL
    │   ├── ChainIdMismatchError  an RPC serves another chain than config.yaml's chainId (exit code 2)
    │   └── TransactionError      a transaction was refused, reverted, or not mined in time
    ├── RegistryError        a registry is not loaded or is stale (the node fails closed)
    ├── NonceStoreError      the nonce store (Redis) is unreachable
    ├── ChallengeError       a challenge payload was refused (400) or failed
    └── ApiError             anything answered to an HTTP client, with status, type and code
        ├── AuthError        an authentication rejection with its reason code (SPEC §5)
        ├── RateLimitedError a caller over one of its budgets: 429 rate_limited (SPEC §11)
        └── UpstreamError    the backend failed: 502 / 503 / 504

Third-party exceptions (aiohttp, redis, web3) are translated into these once, at the adapter that
calls the library, with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "ApiError",
    "AuthError",
    "ChainError",
    "ChainIdMismatchError",
    "ChallengeError",
    "ConfigError",
    "ConfigProblem",
    "FxnError",
    "KeyFileError",
    "NodeIdentityError",
    "NonceStoreError",
    "RateLimitedError",
    "RegistryError",
    "SigningError",
    "TransactionError",
    "UpstreamError",
    "UsageError",
    "error_body",
]


class FxnError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration file, printed as ``file:line: message (fix)``."""

    file: str
    line: int | None
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        hint = f" ({self.fix})" if self.fix else ""
        return f"{where}: {self.message}{hint}"


class ConfigError(FxnError):
    """One or more configuration problems; ``str()`` lists them, one per line."""

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(file="config", line=None, message=problems)]
        elif isinstance(problems, ConfigProblem):
            problems = [problems]
        self.problems: list[ConfigProblem] = problems
        super().__init__("\n".join(str(p) for p in problems))


class KeyFileError(FxnError):
    """A key file is missing, unreadable, group/world-readable, corrupt, or the password is wrong."""


class SigningError(FxnError):
    """A signature or a signed-message part is malformed."""


class NodeIdentityError(FxnError):
    """The node is not the one the client expects (SPEC §5 Audience): its ``/health`` claims another
    address, or an answer is not signed by the expected address (missing, foreign or invalid)."""


class UsageError(FxnError):
    """A command's option or argument cannot be used as given; the message names it and the fix."""


class ChainError(FxnError):
    """Every configured JSON-RPC provider failed the call."""


class ChainIdMismatchError(ChainError):
    """An RPC URL serves another chain than ``chainId`` in config.yaml."""


class TransactionError(ChainError):
    """A transaction would revert, cannot be paid for, reverted, or was not mined in time."""


class RegistryError(FxnError):
    """A registry is not loaded yet, or its data is older than ``maxStaleness``."""


class NonceStoreError(FxnError):
    """The nonce store cannot be reached; the node fails closed."""


class ChallengeError(FxnError):
    """A challenge payload was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_challenge") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ApiError(FxnError):
    """An error answered to an HTTP client in the OpenAI error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, type_=self.type, code=self.code)


class AuthError(ApiError):
    """An authentication rejection; ``code`` is the stable reason code of SPEC §5."""

    def __init__(
        self, status: int, reason: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, message, code=reason, type_="authentication_error")
        self.headers = headers or {}

    @property
    def reason(self) -> str:
        return self.code


class RateLimitedError(ApiError):
    """A caller over one of its ``limits`` (SPEC §11); ``limit`` names the budget, ``retry_after`` is the
    whole seconds (at least 1) until the request would pass."""

    def __init__(self, limit: str, retry_after: int, message: str) -> None:
        super().__init__(
            429,
            message,
            code="rate_limited",
            type_="rate_limit_error",
            headers={"Retry-After": str(retry_after)},
        )
        self.limit = limit
        self.retry_after = retry_after


class UpstreamError(ApiError):
    """The model backend failed: unreachable or broken (502), none healthy (503), timed out (504)."""

    def __init__(self, status: int, message: str, *, code: str, kind: str = "") -> None:
        super().__init__(status, message, code=code, type_="upstream_error")
        self.kind = kind or code


def error_body(message: str, *, type_: str = "invalid_request_error", code: str | None = None) -> bytes:
    """The OpenAI error shape: ``{"error": {"message", "type", "code"}}``."""
    payload: dict[str, Any] = {"error": {"message": message, "type": type_, "code": code}}
    return orjson.dumps(payload)
