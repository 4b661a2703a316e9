"""One small hierarchy for everything the connector raises on purpose."""


class ExtendError(Exception):
    """Root of the connector's errors; its message is one line a user can act on."""


class ExtendConfigError(ExtendError):
    """A setting is missing or invalid; nothing was sent to the API."""


class ExtendApiError(ExtendError):
    """The API answered with an error status, after any retries."""

    def __init__(
        self,
        *,
        status: int,
        path: str,
        code: str | None,
        message: str,
        request_id: str | None,
        hint: str = "",
    ) -> None:
        self.status = status
        self.path = path
        self.code = code
        self.api_message = message
        self.request_id = request_id
        parts = [f"Extend API answered HTTP {status}"]
        if code:
            parts.append(code)
        text = f"{' '.join(parts)} on GET {path}: {message}"
        if request_id:
            text += f" (requestId {request_id})"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class ExtendAuthError(ExtendApiError):
    """The key was refused (401) or may not reach the workspace (403)."""


class ExtendTransportError(ExtendError):
    """No usable answer arrived: the host was unreachable, timed out or cut the body."""


class ExtendDataError(ExtendError):
    """The API answered 200 with data the connector cannot load without losing it."""


class FirstLoadConflictError(ExtendError):
    """A first load by append met a run it may not append: repeated, out of order or stored.

    Raised before anything is loaded; the pipeline runs the sync again with merge.
    """


class ExtendLockedError(ExtendError):
    """Another sync of the same pipeline or DuckDB file is running; nothing was done."""


def root_cause(exc: BaseException) -> BaseException:
    """The first ExtendError in the chain dlt wraps around it, else the innermost one."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        if isinstance(current, ExtendError):
            return current
        seen.append(current)
        current = current.__cause__ or current.__context__ or getattr(current, "exception", None)
    return seen[-1]
