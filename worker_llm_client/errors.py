"""The error hierarchy. Every failure the executor records on a step is a ``StepError``.

Adapters translate vendor exceptions (google.api_core, google.genai, transport errors) into these
at the edge with ``raise ... from exc``; the core and the use case never see a google type.

    WorkerError                      anything the executor raises on purpose
    ├── EventDecodeError             the CloudEvent cannot be turned into a run snapshot (acked)
    ├── ConfigurationError           the function's own environment is unusable (fail loudly)
    ├── DeliveryInFlight             a copy of an event whose first delivery failed or still runs (5xx)
    ├── RunStoreUnavailable          any Firestore error on the run document (5xx, or retried)
    ├── UnhandledError               what an entry point raises in place of a foreign exception (5xx)
    └── StepError                    recorded on the step as error {code, message, retryable}
        ├── PermanentStepError       FAILED at once, never retried
        │   ├── InvalidStep              INVALID_STEP
        │   ├── PromptNotFound           PROMPT_NOT_FOUND
        │   ├── ProfileNotFound          PROFILE_NOT_FOUND
        │   ├── ProfileNotAllowed        PROFILE_NOT_ALLOWED
        │   ├── ModelNotAllowed          MODEL_NOT_ALLOWED
        │   ├── TemplateError            TEMPLATE_ERROR
        │   ├── SchemaInvalid            SCHEMA_INVALID      (the prompt's schema itself)
        │   ├── LlmAuth                  LLM_AUTH
        │   ├── LlmBadRequest            LLM_BAD_REQUEST
        │   ├── LlmBlocked               LLM_BLOCKED
        │   ├── LlmTruncated             LLM_TRUNCATED
        │   ├── StorageForbidden         STORAGE_FORBIDDEN   (the bucket is missing or not ours to write)
        │   ├── RunTooLarge              RUN_TOO_LARGE       (the run document cannot hold the step's result)
        │   ├── Internal                 INTERNAL            (anything unforeseen: its type, never its text)
        │   ├── InputRejected            INPUT_REJECTED      (a var holds a credential; secretsPolicy reject)
        │   └── InvalidOutput            (carries ``feedback`` for a repair turn: sent, never logged)
        │       ├── OutputNotJson            OUTPUT_NOT_JSON
        │       └── OutputSchemaMismatch     OUTPUT_SCHEMA_MISMATCH
        └── RetryableStepError       RETRY_WAIT while attempts remain, then FAILED (retryable: true)
            ├── LlmRateLimited           LLM_RATE_LIMITED   (carries the server's retry hint)
            ├── LlmUnavailable           LLM_UNAVAILABLE
            ├── LlmTimeout               LLM_TIMEOUT
            ├── StorageUnavailable       STORAGE_UNAVAILABLE
            └── LeaseExpired             LEASE_EXPIRED

Messages are for operators: they name ids, codes and sizes, never secrets, prompt text, variable
values or model output.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import ClassVar, Self, TypeVar

T = TypeVar("T")


class WorkerError(Exception):
    """Base of every error the executor raises on purpose."""


class EventDecodeError(WorkerError):
    """The event body or attributes cannot be decoded; the event is acknowledged and dropped."""


class ConfigurationError(WorkerError):
    """The function's environment is missing or malformed."""


class DeliveryInFlight(WorkerError):
    """A copy of an event whose first delivery failed or is still running: answered 5xx so that
    Eventarc redelivers it."""


class RunStoreUnavailable(WorkerError):
    """Firestore failed reading or writing a run (any of its errors but a failed precondition and
    a write the document cannot hold), or kept conflicting: a claim answers 5xx so that Eventarc
    redelivers; a finalize is retried within the invocation."""


class UnhandledError(WorkerError):
    """Raised by an entry point in place of an exception outside this tree, which was logged with a
    safe traceback: the framework logs what it sees, and a foreign exception's text may quote
    model output, prompt text or variable values."""


class StepError(WorkerError):
    """An error recorded on a step. ``code`` is the contract's error code."""

    code: ClassVar[str] = "INTERNAL"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.llm_calls = 0  # what the failed attempt cost, for the step.failed log line
        self.usage: dict[str, int] = {}
        self.cost_usd: float | None = None

    def fresh(self) -> Self:
        """A new instance of this very error (class, message and every attribute), without its
        traceback: one cached answer raised by several threads must not share one."""
        clone = copy.copy(self)
        clone.__traceback__ = clone.__cause__ = clone.__context__ = None
        return clone

    def add_detail(self, detail: str) -> None:
        """Append ``detail`` to the message (e.g. where the rejected replies are kept)."""
        self.message = f"{self.message}; {detail}"
        self.args = (self.message,)


class PermanentStepError(StepError):
    retryable = False


def permanent_or(load: Callable[[], T]) -> T | PermanentStepError:
    """``load()``'s value, or the permanent step error it raised (a definite answer, e.g. "does
    not exist", that a cache may keep and a caller may raise later); other errors propagate."""
    try:
        return load()
    except PermanentStepError as error:
        return error


class RetryableStepError(StepError):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidStep(PermanentStepError):
    code = "INVALID_STEP"


class PromptNotFound(PermanentStepError):
    code = "PROMPT_NOT_FOUND"


class ProfileNotFound(PermanentStepError):
    code = "PROFILE_NOT_FOUND"


class ProfileNotAllowed(PermanentStepError):
    code = "PROFILE_NOT_ALLOWED"


class ModelNotAllowed(PermanentStepError):
    code = "MODEL_NOT_ALLOWED"


class TemplateError(PermanentStepError):
    code = "TEMPLATE_ERROR"


class SchemaInvalid(PermanentStepError):
    code = "SCHEMA_INVALID"


class LlmAuth(PermanentStepError):
    code = "LLM_AUTH"


class LlmBadRequest(PermanentStepError):
    code = "LLM_BAD_REQUEST"


class LlmBlocked(PermanentStepError):
    code = "LLM_BLOCKED"


class LlmTruncated(PermanentStepError):
    code = "LLM_TRUNCATED"


class StorageForbidden(PermanentStepError):
    code = "STORAGE_FORBIDDEN"


class RunTooLarge(PermanentStepError):
    code = "RUN_TOO_LARGE"


class Internal(PermanentStepError):
    """An exception outside this tree. Its message names the exception's type only: the text of a
    foreign exception may quote model output, prompt text or variable values."""

    code = "INTERNAL"

    @classmethod
    def from_exception(cls, exc: BaseException, where: str) -> Internal:
        return cls(f"unexpected {type(exc).__module__}.{type(exc).__qualname__} while {where}")


class InputRejected(PermanentStepError):
    """A var holds a credential and the profile's ``secretsPolicy`` is ``reject``: the message
    names the var and the kind of secret, never its value."""

    code = "INPUT_REJECTED"


class InvalidOutput(PermanentStepError):
    """The reply is not a report. ``message`` is safe to record; ``feedback`` quotes the reply's
    problems for the model's repair turn and must never be logged or stored."""

    def __init__(self, message: str, feedback: str = "") -> None:
        super().__init__(message)
        self.feedback = feedback


class OutputNotJson(InvalidOutput):
    code = "OUTPUT_NOT_JSON"


class OutputSchemaMismatch(InvalidOutput):
    code = "OUTPUT_SCHEMA_MISMATCH"


class LlmRateLimited(RetryableStepError):
    code = "LLM_RATE_LIMITED"


class LlmUnavailable(RetryableStepError):
    code = "LLM_UNAVAILABLE"


class LlmTimeout(RetryableStepError):
    code = "LLM_TIMEOUT"


class StorageUnavailable(RetryableStepError):
    code = "STORAGE_UNAVAILABLE"


class LeaseExpired(RetryableStepError):
    code = "LEASE_EXPIRED"
