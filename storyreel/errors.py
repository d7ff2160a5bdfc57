"""Error hierarchy.

    StoryreelError
    ├── BadInputError            the request cannot work; never retried
    ├── StorageKeyError          a storage key that does not exist or escapes the store
    ├── NotFoundError            no such generation/clip (HTTP 404)
    ├── ConflictError            the action does not fit the current state (HTTP 409)
    ├── UnauthorizedError        no or a wrong API key (HTTP 401)
    ├── RateLimitedError         a per-user limit was hit (HTTP 429 with Retry-After)
    ├── MediaError               FFmpeg failed; retried
    └── ProviderError            a clip/image provider failed; retried
        ├── PredictionFailedError the prediction itself ended failed: a new one may be made
        ├── ProviderRefusedError the provider refused the content; never retried
        ├── ProviderRejectedError the provider refused the request (auth, model, input)
        └── ProviderThrottledError still rate limited after the client's own retries

Activities raise these as they are; one worker interceptor (``activities.errors.ErrorMapper``,
on every worker ``worker.py`` builds) turns them into ``ApplicationError`` with ``type`` = the
class name (``to_application_error``; a subclass may say otherwise) and ``non_retryable`` from
the class, so retry policies can name them. An error is final unless its
class says it is worth another try (``retryable``): FFmpeg and provider trouble.
"""

from __future__ import annotations

from typing import ClassVar

from temporalio.exceptions import ApplicationError


class StoryreelError(Exception):
    """Base of every error storyreel raises on purpose."""

    retryable: ClassVar[bool] = False

    def to_application_error(self, **details: object) -> ApplicationError:
        return ApplicationError(
            str(self),
            details or None,
            type=type(self).__name__,
            non_retryable=not self.retryable,
        )


class BadInputError(StoryreelError):
    pass


class StorageKeyError(StoryreelError):
    pass


class NotFoundError(StoryreelError):
    pass


class ConflictError(StoryreelError):
    pass


class UnauthorizedError(StoryreelError):
    pass


class RateLimitedError(StoryreelError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MediaError(StoryreelError):
    retryable = True


class ProviderError(StoryreelError):
    retryable = True


class PredictionFailedError(ProviderError):
    """The upstream prediction ended in failure; resuming it is pointless, a new one may run."""


class ProviderRefusedError(ProviderError):
    retryable = False


class ProviderRejectedError(ProviderError):
    """The provider refused the request itself (bad key, unknown model, invalid input).

    Sending it again cannot help, so it is not retried.
    """

    retryable = False

    def __init__(self, message: str, *, status_code: int, detail: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class ProviderThrottledError(ProviderError):
    """Still rate limited after the client's own backoff. Retried like any provider trouble;
    when the clip's retries run out on it, a fallback provider may take the clip."""


NON_RETRYABLE_TYPES = [
    BadInputError.__name__,
    StorageKeyError.__name__,
    ProviderRefusedError.__name__,
    ProviderRejectedError.__name__,
]

FALLBACK_TYPES = frozenset(
    {
        ProviderRefusedError.__name__,
        ProviderRejectedError.__name__,
        ProviderThrottledError.__name__,
        PredictionFailedError.__name__,
    }
)
"""Failures after which a clip moves to the next provider of its fallback chain: the
prediction cannot deliver any more (a timeout may still, so it never moves a clip on)."""
