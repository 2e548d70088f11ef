"""The errors a caller can cause, each named for what went wrong.

The server's interceptor maps each class to one gRPC status code
(DESIGN.md decision 7); the CLI prints the message. Messages say what was
wrong and what to do about it, since an operator reads them.
"""

from __future__ import annotations


class EdgetlError(Exception):
    """Base class; `code` names the gRPC status (grpc.StatusCode member name)."""

    code = "INTERNAL"


class InvalidInput(EdgetlError):
    """The caller sent something malformed: corrupt image, wrong tensor shape…"""

    code = "INVALID_ARGUMENT"


class TooLarge(EdgetlError):
    """The request is over a configured size limit (pixels, bytes)."""

    code = "RESOURCE_EXHAUSTED"


class NotFound(EdgetlError):
    """An unknown task, backbone or adapter version."""

    code = "NOT_FOUND"


class AlreadyExists(EdgetlError):
    """Creating something whose name is taken."""

    code = "ALREADY_EXISTS"


class NotReady(EdgetlError):
    """The thing exists but cannot serve yet, e.g. a task with no adapter."""

    code = "FAILED_PRECONDITION"


class DeadlineExceeded(EdgetlError):
    """The caller's deadline passed while the request waited; it was not computed."""

    code = "DEADLINE_EXCEEDED"


class Unavailable(EdgetlError):
    """Overloaded or shutting down; the caller may retry later."""

    code = "UNAVAILABLE"


class Unauthenticated(EdgetlError):
    """No credentials, or credentials that do not check out."""

    code = "UNAUTHENTICATED"


class PermissionDenied(EdgetlError):
    """A known caller whose role does not allow this call."""

    code = "PERMISSION_DENIED"


class ConfigError(EdgetlError):
    """A settings file, plugin or backbone is misconfigured (raised at start-up)."""

    code = "FAILED_PRECONDITION"


class Damaged(EdgetlError):
    """A stored artifact does not match its recorded hash: damaged or tampered with."""

    code = "DATA_LOSS"


class UntrustedFile(EdgetlError):
    """A model file that would reach outside itself (external data paths, custom ops)."""

    code = "FAILED_PRECONDITION"


class ExportError(EdgetlError):
    """Exporting a backbone to ONNX failed or did not match torch."""

    code = "INTERNAL"
