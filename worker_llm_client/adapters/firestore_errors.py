"""What Firestore's errors mean to us: the one place that tells an outage from the rest.

The run store and the catalog both read Firestore; each turns these into its own error at its edge
(``RunStoreUnavailable``: the entry point answers 5xx and Eventarc redelivers; a catalog read's
``StorageUnavailable``: the step retries). Nothing here reaches the core.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_errors

TRANSIENT_FIRESTORE = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.RetryError,
    gexc.Aborted,
    gexc.ResourceExhausted,
    gexc.Unknown,
    auth_errors.TransportError,
    auth_errors.RefreshError,  # the token endpoint blipped
    ConnectionError,
    TimeoutError,
)
# Every error a Firestore call may raise: the API's own, the credentials', the transport's.
FIRESTORE_ERRORS = (gexc.GoogleAPIError, auth_errors.GoogleAuthError, ConnectionError, TimeoutError)
# What Firestore (and its emulator) say when a document would exceed its size or index limits.
TOO_LARGE_MARKS = (
    "maximum entity size",
    "exceeds the maximum allowed size",
    "too many index entries",
    "is longer than",  # the emulator: 'The value of property "x" is longer than 1048487 bytes.'
)


def is_too_large(error: BaseException) -> bool:
    """Firestore refused a write because the document would break its size or index limits."""
    message = str(getattr(error, "message", None) or error).lower()
    return isinstance(error, gexc.InvalidArgument) and any(mark in message for mark in TOO_LARGE_MARKS)
