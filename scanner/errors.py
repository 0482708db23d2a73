"""Errors the scanner raises. Only the CLI turns them into exit codes.

    ScannerError                 base class: anything the user can act on
    ├── ConfigError              an option or argument is invalid (bad threshold, unknown device)
    ├── InputError               the input paths: missing, or nothing scannable in them
    ├── OutputError              the report cannot be written where asked
    ├── ModelLoadError           a model name or path cannot be loaded offline
    ├── IndexError_              a reference index is missing, corrupt or built with another model
    ├── ClusterError             a Ray address does not answer
    ├── WorkerError              a Ray worker kept dying on the same work after its retries
    │   └── ModelProcessError    the model process of a `scan serve` replica died (the replica is replaced)
    └── RequestError             a request to `scan serve` is malformed (answered with its 4xx status)
"""

from __future__ import annotations


class ScannerError(Exception):
    """Base class for errors with a message meant for the user. ``exit_code`` is used by the CLI."""

    exit_code = 70


class ConfigError(ScannerError):
    """Raised when an option value is invalid; the message names the option and what it accepts."""

    exit_code = 2


class InputError(ScannerError):
    """Raised when an input path does not exist or holds no scannable documents."""

    exit_code = 3


class OutputError(ScannerError):
    """Raised when the report path's folder is missing or not writable."""

    exit_code = 4


class ModelLoadError(ScannerError):
    """Raised when a model cannot be loaded offline; the message says how to point at a local copy."""

    exit_code = 5


class IndexError_(ScannerError):
    """Raised when a reference index is missing, unreadable, or built with a different embedding model."""

    exit_code = 6


class ClusterError(ScannerError):
    """Raised when the Ray cluster given by --address or RAY_ADDRESS cannot be reached."""

    exit_code = 7


class WorkerError(ScannerError):
    """Raised when a Ray worker or model actor died more often than its retries allow (e.g. out of memory)."""

    exit_code = 8


class ModelProcessError(WorkerError):
    """Raised by ``scanner.model_process`` when a replica's model process died or could not start."""


class RequestError(ScannerError):
    """Raised by ``scanner.serve`` when a request cannot be answered as sent (bad JSON, a missing or unknown field,
    a body or sentence over its limit). ``status`` is the HTTP status it is answered with (400, 404, 405, 413,
    415 or 422); the message says what to change. It never reaches the CLI."""

    exit_code = 2

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[type[RequestError], tuple[int, str]]:  # pickled across scanner.model_process
        return type(self), (self.status, str(self))
