"""One error hierarchy for the runtime. Retry code reads ``retriable``; receivers map it to status codes."""

from __future__ import annotations


class TraceTriageError(Exception):
    """Base of every error the runtime raises on purpose."""

    retriable: bool = False


class ConsumerError(TraceTriageError):
    """A stage could not take or deliver a batch.

    ``retriable`` says whether the sender may try the same data again later;
    ``retry_after`` (seconds) is a hint from the far side (gRPC RetryInfo, HTTP Retry-After).
    """

    def __init__(self, message: str, *, retriable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


class RefusedError(ConsumerError):
    """The pipeline cannot take more right now (queue full, memory limit): back off and retry."""

    def __init__(self, message: str, *, retry_after: float | None = 1.0) -> None:
        super().__init__(message, retriable=True, retry_after=retry_after)


class PermanentError(ConsumerError):
    """The data can never be delivered as it is (rejected by the backend, malformed): do not retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class ComponentStartError(TraceTriageError):
    """A component could not start (port in use, unreadable file, bad certificate)."""

    def __init__(self, component: str, cause: BaseException | str) -> None:
        self.component = component
        self.cause = cause
        super().__init__(f"{component}: cannot start: {cause}")
