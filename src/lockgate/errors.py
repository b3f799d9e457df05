"""One error type for the whole gateway; each API renders it in its own shape."""

from __future__ import annotations

# HTTP status -> (OpenAI error type, Anthropic error type)
_TYPES = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    403: ("permission_error", "permission_error"),
    404: ("not_found_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
    409: ("invalid_request_error", "invalid_request_error"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "invalid_request_error"),
    422: ("invalid_request_error", "invalid_request_error"),
    429: ("rate_limit_error", "rate_limit_error"),
    502: ("api_error", "api_error"),
    503: ("api_error", "overloaded_error"),
    504: ("api_error", "api_error"),
}


class GatewayError(Exception):
    """A request that ends with an HTTP error. Never carries a traceback to the client."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> dict:
        kind = _TYPES.get(self.status, ("api_error", "api_error"))[0]
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict:
        kind = _TYPES.get(self.status, ("api_error", "api_error"))[1]
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def body(self, api: str) -> dict:
        return self.anthropic_body() if api == "anthropic" else self.openai_body()


class UpstreamError(GatewayError):
    """An upstream call failed. `kind` is one of outage | withdrawn | refusal | client."""

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, code=f"upstream_{kind}")
        self.kind = kind
        self.upstream_status = upstream_status
        self.retry_after = retry_after
