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
        └── ProviderRefusedError the provider refused the content; never retried

Activities turn these into ``ApplicationError`` with ``type`` = the class name and
``non_retryable`` from the class, so retry policies can name them.
"""

from __future__ import annotations

from typing import ClassVar

from temporalio.exceptions import ApplicationError


class StoryreelError(Exception):
    """Base of every error storyreel raises on purpose."""

    retryable: ClassVar[bool] = True

    def to_application_error(self, **details: object) -> ApplicationError:
        return ApplicationError(
            str(self),
            details or None,
            type=type(self).__name__,
            non_retryable=not self.retryable,
        )


class BadInputError(StoryreelError):
    retryable = False


class StorageKeyError(StoryreelError):
    retryable = False


class NotFoundError(StoryreelError):
    retryable = False


class ConflictError(StoryreelError):
    retryable = False


class UnauthorizedError(StoryreelError):
    retryable = False


class RateLimitedError(StoryreelError):
    retryable = False

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MediaError(StoryreelError):
    pass


class ProviderError(StoryreelError):
    pass


class PredictionFailedError(ProviderError):
    """The upstream prediction ended in failure; resuming it is pointless, a new one may run."""


class ProviderRefusedError(ProviderError):
    retryable = False


NON_RETRYABLE_TYPES = [
    BadInputError.__name__,
    StorageKeyError.__name__,
    ProviderRefusedError.__name__,
]
