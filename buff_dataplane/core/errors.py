"""The one error tree of buff_dataplane.

Every error the product raises on purpose derives from :class:`BuffError`. Library errors
(pyarrow, httpx, websockets, OSError) are turned into one of these where they cross a
module boundary (``raise X(...) from exc``), and the CLI maps them to exit codes in one
place (:func:`exit_code_for`)::

    BuffError
    ├── ValidationError          exit 2  bad input: identifiers, paths, options, config
    │   ├── ConfigError                  a config value out of range or an unknown key
    │   └── PayloadRejected              a payload refused by a parser (quarantined)
    ├── IntegrityError           exit 1  a hash, chain or sequence does not hold
    │   └── ImmutabilityError            an attempt to rewrite or overlap sealed data
    ├── IncompleteDataError      exit 3  a range holds an unresolved gap or conflict
    ├── StorageError             exit 4  I/O failure on the data directory
    │   └── LockedError                  another writer holds the data directory
    ├── FeedError                exit 4  network failure after retries
    └── ExecutorError            exit 4  a worker process died mid-task (nothing published)

Messages are one line, name the offending thing, and say what was expected.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_IO = 4


class BuffError(Exception):
    """Root of every error buff_dataplane raises on purpose."""

    exit_code: int = EXIT_IO

    def __str__(self) -> str:
        # One line, always: newlines inside an argument would break log parsing.
        return " ".join(super().__str__().split())


class ValidationError(BuffError, ValueError):
    """Bad input: an identifier, path, option, payload or config value."""

    exit_code = EXIT_USAGE


class ConfigError(ValidationError):
    """A config value out of its documented range, or an unknown key."""


class PayloadRejected(ValidationError):
    """A payload a parser refuses; the caller quarantines it with ``reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class IntegrityError(BuffError):
    """A hash, a manifest chain or a sequence does not hold."""

    exit_code = EXIT_VERIFY_FAILED


class ImmutabilityError(IntegrityError):
    """An attempt to rewrite, overlap or reorder sealed data."""


class IncompleteDataError(BuffError):
    """The requested range holds an unresolved gap or a conflict."""

    exit_code = EXIT_INCOMPLETE


class StorageError(BuffError):
    """An I/O failure on the data directory."""

    exit_code = EXIT_IO


class LockedError(StorageError):
    """Another process holds the write lock of the data directory."""


class FeedError(BuffError):
    """A network failure that persisted after the retry policy gave up."""

    exit_code = EXIT_IO


class ExecutorError(BuffError):
    """A worker of a partition-parallel job died; the job published nothing."""

    exit_code = EXIT_IO


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for ``exc`` (4 for anything unexpected)."""
    if isinstance(exc, BuffError):
        return exc.exit_code
    return EXIT_IO
