"""What every client command shares: errors, the channel, JSON output, progress, ImageFolder trees."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "localhost:50051"
EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise CliError(f"{message} (see `{self.prog} --help`)", EXIT_USAGE)


def open_channel(args):
    """A channel to --server: TLS when --tls-ca (and, for mutual TLS, --tls-cert/--tls-key) is given."""
    import os

    import grpc

    limit = 64 * 1024 * 1024
    options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
    ca = getattr(args, "tls_ca", None) or os.environ.get("EDGETL_TLS_CA")
    cert = getattr(args, "tls_cert", None) or os.environ.get("EDGETL_TLS_CERT")
    key = getattr(args, "tls_key", None) or os.environ.get("EDGETL_TLS_KEY")
    if not (ca or cert or key):
        return grpc.insecure_channel(args.server, options=options)
    if bool(cert) != bool(key):
        raise CliError("--tls-cert and --tls-key go together", EXIT_USAGE)
    try:
        read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
        credentials = grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}", EXIT_USAGE) from None
    return grpc.secure_channel(args.server, credentials, options=options)


def metadata(args) -> tuple[tuple[str, str], ...]:
    """The bearer token (--token or $EDGETL_TOKEN), sent with every call."""
    import os

    token = getattr(args, "token", None) or os.environ.get("EDGETL_TOKEN")
    return (("authorization", f"Bearer {token}"),) if token else ()


def call(args, method, request):
    """One RPC, with gRPC failures turned into CliErrors."""
    import grpc

    try:
        return method(request, timeout=args.timeout, metadata=metadata(args))
    except grpc.RpcError as exc:
        code = exc.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and "ready" not in (exc.details() or ""):
            raise CliError(f"cannot reach the edgetl server at {args.server} ({code.name}: {exc.details()}); is `edgetl serve` running?", EXIT_UNREACHABLE) from None
        raise CliError(f"{code.name}: {exc.details()}") from None


def image_folder(root: Path) -> list[tuple[str, Path]]:
    """(class, file) pairs of an ImageFolder tree: root/<class>/<image>."""
    if not root.is_dir():
        raise CliError(f"{root} is not a directory (expected DIR/<class>/*.png)", EXIT_USAGE)
    pairs = [(d.name, f) for d in sorted(root.iterdir()) if d.is_dir() for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not pairs:
        raise CliError(f"no images under {root}/<class>/ (png, jpg, bmp)")
    return pairs


class Progress:
    """A progress bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self.tty = sys.stderr.isatty()
        self._last_decile = -1

    def step(self, note: str = "") -> None:
        self.done += 1
        fraction = self.done / max(self.total, 1)
        bar = "#" * int(fraction * 30)
        line = f"{self.label} [{bar:<30}] {self.done}/{self.total} {note}"
        if self.tty:
            print("\r" + line[:120], end="", file=sys.stderr, flush=True)
            if self.done == self.total:
                print(file=sys.stderr)
        elif int(fraction * 10) != self._last_decile or self.done == self.total:
            self._last_decile = int(fraction * 10)
            print(line, file=sys.stderr, flush=True)


def report_failure(args, path: Path, message: str) -> None:
    if args.json:
        print_json({"file": str(path), "error": message})
    print(f"edgetl: error: {message}", file=sys.stderr)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)
