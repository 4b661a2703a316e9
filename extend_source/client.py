"""The HTTP client: one retrying session, Extend's headers, and errors that name the fix."""

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from dlt.sources.helpers.requests import Client

from extend_source.errors import (
    ExtendApiError,
    ExtendAuthError,
    ExtendConfigError,
    ExtendDataError,
    ExtendTransportError,
)
from extend_source.redaction import QuietAdapter
from extend_source.settings import (
    API_VERSION,
    REGIONS,
    REQUEST_MAX_ATTEMPTS,
    REQUEST_TIMEOUT_SECONDS,
    RETRY_MAX_DELAY_SECONDS,
    RETRY_STATUS_CODES,
)

logger = logging.getLogger(__name__)

# A cut-off body surfaces as one of these from inside `Session.send`, where
# dlt's retry wraps it, so they are retried like a dropped connection.
RETRY_EXCEPTIONS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

AUTH_HINTS = {
    401: "Check EXTEND_API_KEY: the key is missing, malformed or revoked",
    403: "Check the workspace id: this key may not reach that workspace",
}
STATUS_HINTS = {
    **AUTH_HINTS,
    400: "Check the filters and api_version; if they look right, report the requestId",
    402: "The account is out of credits; top it up, then run the sync again",
    404: "Check base_url: it should be an Extend API host or region name",
    429: "Still rate-limited after every retry; run the sync again later",
}
SERVER_ERROR_HINT = (
    "Extend, or a proxy in front of it, kept failing; run the sync again later, "
    "and give Extend support the requestId if it persists"
)

BODY_EXCERPT_CHARS = 200


def resolve_base_url(base_url: str) -> str:
    """Turn a region name or URL into a base URL the key may safely travel to."""
    url = REGIONS.get(base_url.strip().lower(), base_url.strip()).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not _has_valid_port(url):
        raise ExtendConfigError(
            f"base_url {base_url!r} is neither a region ({', '.join(REGIONS)}) nor an "
            "http(s) URL; use e.g. https://api.eu1.extend.ai or the region name eu1"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ExtendConfigError(
            f"base_url {url!r} is plain http to a non-loopback host; the API key would "
            "travel in clear text, so use https"
        )
    return url


def _has_valid_port(url: str) -> bool:
    # urlsplit checks the port only when it is read.
    try:
        port = urlsplit(url).port
    except ValueError:
        return False
    return port != 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ExtendClient:
    """Sends GET requests to the Extend API with retries, pacing and request counting."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        api_version: str = API_VERSION,
        workspace_id: str | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        max_attempts: int = REQUEST_MAX_ATTEMPTS,
        backoff_factor: float = 1.0,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.request_count = 0
        self._lock = threading.Lock()
        self._last_paced_at = 0.0
        headers = {
            "Authorization": f"Bearer {api_key}",
            "x-extend-api-version": api_version,
            "Accept": "application/json",
            "User-Agent": "extend-dlt-connector",
        }
        if workspace_id:
            headers["x-extend-workspace-id"] = workspace_id
        self._client = Client(
            request_timeout=timeout,
            raise_for_status=False,
            status_codes=RETRY_STATUS_CODES,
            exceptions=RETRY_EXCEPTIONS,
            request_max_attempts=max_attempts,
            request_backoff_factor=backoff_factor,
            request_max_retry_delay=RETRY_MAX_DELAY_SECONDS,
            respect_retry_after_header=True,
            session_attrs={
                "headers": headers,
                "hooks": {"response": [self._on_response]},
            },
        )
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._adapter = QuietAdapter(pool_maxsize=4)

    def get_json(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        paced_rps: float = 0.0,
        fast_decode: Callable[[bytes], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        """GET `path` and decode its JSON body; raise an `ExtendError` on any failure.

        `fast_decode` is tried on the body first; when it gives None, the body is
        decoded and checked as usual.
        """
        if paced_rps > 0:
            self._pace(paced_rps)
        try:
            response = self._session().get(self.base_url + path, params=params)
        except requests.RequestException as exc:
            raise ExtendTransportError(
                f"no usable answer from {self.base_url} for GET {path} in "
                f"{self._max_attempts} attempts: {self._transport_problem(exc)}; check the "
                "network and base_url, then run the sync again"
            ) from None
        if response.status_code >= 400:
            raise api_error(response, path)
        if fast_decode is not None:
            body = fast_decode(response.content)
            if body is not None:
                return body
        return _decode(response, path)

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # Called once per attempt, inside the retry loop, so retries are counted
        # and every retried failure leaves a trace in the log.
        with self._lock:
            self.request_count += 1
        status = response.status_code
        path = urlsplit(response.url).path
        if status in RETRY_STATUS_CODES:
            logger.warning(
                "HTTP %s on GET %s (requestId %s, Retry-After %s); retrying",
                status,
                path,
                _request_id(response),
                response.headers.get("Retry-After", "-"),
            )
        else:
            logger.debug("HTTP %s on GET %s", status, path)

    def _session(self) -> requests.Session:
        # dlt makes one session per thread, each with its own adapters.
        session = self._client.session
        if not isinstance(session.get_adapter(self.base_url), QuietAdapter):
            session.mount(self.base_url, self._adapter)
        return session

    def _transport_problem(self, exc: requests.RequestException) -> str:
        # Named by kind only: the exception's own text quotes the whole URL.
        if isinstance(exc, requests.Timeout):
            return f"no answer within request_timeout ({self._timeout:g}s)"
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return "the answer was cut off mid-body"
        if isinstance(exc, requests.ConnectionError):
            return "the connection was refused or reset"
        return type(exc).__name__

    def _pace(self, rps: float) -> None:
        with self._lock:
            wait = self._last_paced_at + 1.0 / rps - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_paced_at = time.monotonic()

    def close(self) -> None:
        self._client.session.close()


def _decode(response: requests.Response, path: str) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise ExtendDataError(
                f"Extend API answered GET {path} with JSON nested more than 1024 levels "
                f"deep, likely a run's metadata{_request_note(response)}; flatten or remove "
                "that metadata, then run the sync again"
            ) from None
        raise ExtendTransportError(
            f"Extend API answered HTTP {response.status_code} on GET {path} with a body "
            f"that is not JSON{_request_note(response)}: "
            f"{_excerpt(response)!r}; run the sync again later"
        ) from None
    if not isinstance(body, dict):
        raise ExtendTransportError(
            f"Extend API answered GET {path} with a JSON {type(body).__name__}, "
            f"not an object{_request_note(response)}; run the sync again later"
        )
    return body


def api_error(response: requests.Response, path: str) -> ExtendApiError:
    """Build the error for a failed answer from any of the error body shapes Extend uses."""
    code, message, request_id = _parse_error_body(response)
    request_id = request_id or _request_id(response)
    status = response.status_code
    error_type = ExtendAuthError if status in AUTH_HINTS else ExtendApiError
    hint = STATUS_HINTS.get(status) or (SERVER_ERROR_HINT if status >= 500 else "")
    return error_type(
        status=status,
        path=path,
        code=code,
        message=message,
        request_id=request_id,
        hint=hint,
    )


def _parse_error_body(
    response: requests.Response,
) -> tuple[str | None, str, str | None]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None, _excerpt(response) or response.reason or "no body", None
    if not isinstance(body, dict):
        return None, _excerpt(response), None
    error = body.get("error")
    if isinstance(error, dict):
        body = {**body, **error}
    elif isinstance(error, str) and "message" not in body:
        body = {**body, "message": error}
    message = str(body.get("message") or response.reason or "no message")
    code = body.get("code")
    request_id = body.get("requestId")
    return (str(code) if code else None), message[:BODY_EXCERPT_CHARS], request_id


def _request_id(response: requests.Response) -> str | None:
    return response.headers.get("x-extend-request-id")


def _request_note(response: requests.Response) -> str:
    request_id = _request_id(response)
    return f" (requestId {request_id})" if request_id else ""


def _excerpt(response: requests.Response) -> str:
    text = response.content[:BODY_EXCERPT_CHARS].decode("utf-8", "replace")
    return " ".join(text.split())
