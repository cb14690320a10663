"""Error answers of the gateway: one exception, the OpenAI error shape, nothing internal in it.

A ``Reject`` is raised anywhere on the request path and turned into a JSON
error response (and one log record) by the handler. What a client reads is
written here, never copied from an exception or an upstream: ``scrub`` takes
URLs, addresses and paths out of the rare upstream text that is passed on.

>>> Reject(400, "'n' must be an integer.", "invalid_request_error", "invalid_type", param="n").body()["error"]["param"]
'n'
>>> scrub("connect to http://10.0.0.7:8001/v1 failed (10.0.0.7)")
'connect to [address] failed ([address])'
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import Response

_INTERNAL = re.compile(
    r"[a-z][a-z0-9+.-]*://\S+"  # URLs
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"  # IPv4 (with a port)
    r"|\[?[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\]?(?::\d+)?"  # IPv6
    r"|(?:/[\w.-]+){2,}"  # file paths
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:internal|local|lan|svc|cluster)\b",  # internal host names
    re.IGNORECASE)


def scrub(text: str, limit: int = 500) -> str:
    """``text`` without URLs, IP addresses, file paths or internal host names, at most ``limit`` characters."""
    return _INTERNAL.sub("[address]", text)[:limit]


class Reject(Exception):
    """A request answered with an error response (and logged), before or instead of going upstream."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
                 param: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers, self.extra = headers or {}, extra or {}
        self.detail = detail  # for the log only (an upstream's error text, a policy reason): never sent

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code,
                          **self.extra}}

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), self.status, headers=self.headers, media_type="application/json")

    def log_error(self) -> dict[str, Any]:
        """The ``response.error`` object of the exchange log (with the detail the client did not see)."""
        error: dict[str, Any] = {"type": self.kind, "code": self.code, "message": self.message}
        if self.param:
            error["param"] = self.param
        if self.detail:
            error["detail"] = self.detail
        return error
