"""`edgetl`: run the server and talk to it.

Client commands reach a running server at --server (default localhost:50051,
or $EDGETL_SERVER). Errors print one line to stderr and exit non-zero:
1 the request failed, 2 bad usage, 3 the server could not be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import edgetl

DEFAULT_SERVER = "localhost:50051"
EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise CliError(f"{message} (see `{self.prog} --help`)", EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgetl", description="On-device transfer learning for visual inspection.")
    parser.add_argument("--version", action="version", version=f"edgetl {edgetl.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--data-dir", type=Path, help="where exports, tasks and labels live (default ./edgetl-data, or $EDGETL_DATA_DIR)")
    serve.add_argument("--config", type=Path, help="settings file (default DATA_DIR/edgetl.toml if present)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 50051; 0 picks a free one)")
    serve.add_argument("--providers", help="ONNX Runtime providers in order, e.g. tensorrt,cuda,cpu")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(func=cmd_serve)

    def client(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--server", default=os.environ.get("EDGETL_SERVER", DEFAULT_SERVER), help="HOST:PORT (default $EDGETL_SERVER or localhost:50051)")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
        return p

    backbones = client("backbones", "list the server's backbones")
    backbones.add_argument("--json", action="store_true", help="one JSON object per backbone")
    backbones.set_defaults(func=cmd_backbones)

    tasks = client("tasks", "list or create tasks")
    tasks.add_argument("action", nargs="?", default="list", choices=["list", "create"])
    tasks.add_argument("name", nargs="?", help="task name (create)")
    tasks.add_argument("--classes", help="comma-separated class names (create), e.g. ok,scratch,dent")
    tasks.add_argument("--backbone", default="", help="backbone (create; default: the server's)")
    tasks.add_argument("--json", action="store_true")
    tasks.set_defaults(func=cmd_tasks)

    predict = client("predict", "classify image files")
    predict.add_argument("--task", required=True, help="task name, e.g. imagenet")
    predict.add_argument("--json", action="store_true", help="one JSON object per file")
    predict.add_argument("--top-k", type=int, default=5, help="classes listed in `scores` (default 5)")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.set_defaults(func=cmd_predict)
    return parser


# -- serve ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from edgetl.errors import EdgetlError
    from edgetl.server.app import serve_forever
    from edgetl.settings import Settings

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    providers = tuple(p.strip() for p in args.providers.split(",")) if args.providers else None
    try:
        settings = Settings.load(args.config, args.data_dir, host=args.host, port=args.port, providers=providers)
        asyncio.run(serve_forever(settings, announce=lambda line: print(line, flush=True)))
    except EdgetlError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    return 0


# -- client commands -------------------------------------------------------------


def _channel(args):
    import grpc

    limit = 64 * 1024 * 1024
    return grpc.insecure_channel(args.server, options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)])


def _call(args, method, request):
    """One RPC, with gRPC failures turned into CliErrors."""
    import grpc

    try:
        return method(request, timeout=args.timeout)
    except grpc.RpcError as exc:
        code = exc.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and "ready" not in (exc.details() or ""):
            raise CliError(f"cannot reach the edgetl server at {args.server} ({code.name}: {exc.details()}); is `edgetl serve` running?", EXIT_UNREACHABLE) from None
        raise CliError(f"{code.name}: {exc.details()}") from None


def cmd_backbones(args) -> int:
    from edgetl.api.v1 import model_pb2, model_pb2_grpc

    with _channel(args) as channel:
        response = _call(args, model_pb2_grpc.ModelServiceStub(channel).ListBackbones, model_pb2.ListBackbonesRequest())
    for b in response.backbones:
        if args.json:
            _print_json(
                {
                    "name": b.name, "version": b.version, "plugin": b.plugin, "loaded": b.loaded,
                    "input_size": [b.input_height, b.input_width], "providers": list(b.providers),
                    "export_id": b.export_id, "outputs": {o.name: list(o.shape) for o in b.outputs},
                    "description": b.description,
                }
            )
        else:
            state = f"loaded on {b.providers[0]}" if b.loaded else "not loaded"
            print(f"{b.name:24} {b.input_height}x{b.input_width}  {state:28} {b.description}")
    return 0


def cmd_tasks(args) -> int:
    from edgetl.api.v1 import model_pb2, model_pb2_grpc

    with _channel(args) as channel:
        stub = model_pb2_grpc.ModelServiceStub(channel)
        if args.action == "create":
            if not args.name or not args.classes:
                raise CliError("tasks create needs a NAME and --classes a,b,...", EXIT_USAGE)
            classes = [c for c in args.classes.split(",") if c.strip()]
            tasks = [_call(args, stub.CreateTask, model_pb2.CreateTaskRequest(name=args.name, class_names=classes, backbone=args.backbone))]
        else:
            tasks = _call(args, stub.ListTasks, model_pb2.ListTasksRequest()).tasks
    for t in tasks:
        if args.json:
            _print_json({"name": t.name, "backbone": t.backbone, "classes": len(t.class_names), "class_names": list(t.class_names) if len(t.class_names) <= 50 else None, "active_adapter_version": t.active_adapter_version, "builtin": t.builtin})
        else:
            version = t.active_adapter_version or "no adapter yet"
            print(f"{t.name:24} {t.backbone:20} {len(t.class_names):5} classes  {version}")
    return 0


def cmd_predict(args) -> int:
    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc

    failures = 0
    with _channel(args) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for path in args.files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                _fail(args, path, f"cannot read {path}: {exc.strerror}")
                failures += 1
                continue
            request = inference_pb2.ClassifyRequest(task=args.task, image=image_pb2.Image(encoded=data), top_k=args.top_k)
            try:
                r = _call(args, stub.Classify, request)
            except CliError as exc:
                if exc.code == EXIT_UNREACHABLE:
                    raise
                _fail(args, path, f"{path}: {exc}")
                failures += 1
                continue
            result = {
                "file": str(path),
                "task": r.task,
                "label": r.label,
                "score": round(r.score, 6),
                "scores": {c.label: round(c.score, 6) for c in r.top_classes},
                "adapter_version": r.adapter_version,
                "timing_ms": {"decode": round(r.timing.decode_ms, 3), "queue": round(r.timing.queue_ms, 3), "inference": round(r.timing.inference_ms, 3), "total": round(r.timing.total_ms, 3)},
            }
            if args.json:
                _print_json(result)
            else:
                print(f"{path}: {r.label} ({r.score:.3f})  [task {r.task}, adapter {r.adapter_version}, {r.timing.total_ms:.1f} ms]")
    if failures:
        raise CliError(f"{failures} of {len(args.files)} files failed")
    return 0


def _fail(args, path: Path, message: str) -> None:
    if args.json:
        _print_json({"file": str(path), "error": message})
    print(f"edgetl: error: {message}", file=sys.stderr)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CliError as exc:
        print(f"edgetl: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
