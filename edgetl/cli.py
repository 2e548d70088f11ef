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

    def client_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--server", default=os.environ.get("EDGETL_SERVER", DEFAULT_SERVER), help="HOST:PORT (default $EDGETL_SERVER or localhost:50051)")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
        return p

    def client(name: str, help: str) -> argparse.ArgumentParser:
        return client_options(sub.add_parser(name, help=help))

    def group(name: str, help: str, actions: dict[str, str], default: str | None = None):
        """A command with actions (`edgetl label import ...`), each a parser of its own."""
        p = sub.add_parser(name, help=help)
        actions_sub = p.add_subparsers(dest="action", required=default is None, parser_class=_Parser)
        parsers = {action: client_options(actions_sub.add_parser(action, help=text)) for action, text in actions.items()}
        if default:
            client_options(p)
            p.set_defaults(action=default)
        return p, parsers

    backbones = client("backbones", "list the server's backbones")
    backbones.add_argument("--json", action="store_true", help="one JSON object per backbone")
    backbones.set_defaults(func=cmd_backbones)

    tasks, task_actions = group("tasks", "list or create tasks", {"list": "list tasks", "create": "create a task"}, default="list")
    for p in (tasks, *task_actions.values()):
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_tasks, name=None, classes=None, backbone="")
    task_actions["create"].add_argument("name", help="task name")
    task_actions["create"].add_argument("--classes", required=True, help="comma-separated class names, e.g. ok,scratch,dent")
    task_actions["create"].add_argument("--backbone", default="", help="default: the server's")

    predict = client("predict", "classify image files")
    predict.add_argument("--task", required=True, help="task name, e.g. imagenet")
    predict.add_argument("--json", action="store_true", help="one JSON object per file")
    predict.add_argument("--top-k", type=int, default=5, help="classes listed in `scores` (default 5)")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE")
    predict.set_defaults(func=cmd_predict)

    _, label = group("label", "add operator labels", {"import": "import an ImageFolder tree DIR/<class>/*.png", "add": "label image files as one class", "counts": "labels per class"})
    label["import"].add_argument("paths", nargs=1, type=Path, metavar="DIR")
    label["add"].add_argument("paths", nargs="+", type=Path, metavar="FILE")
    label["add"].add_argument("--class", dest="class_name", required=True, help="the class of the files")
    for p in label.values():
        p.add_argument("--task", required=True)
        p.add_argument("--operator", default=os.environ.get("USER", ""), help="who labelled them (default $USER)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_label, paths=getattr(p, "paths", None), class_name=None)

    train = client("train", "train an adapter for a task")
    train.add_argument("--task", required=True)
    train.add_argument("--method", choices=["head", "lora"], default="head")
    train.add_argument("--epochs", type=int)
    train.add_argument("--rank", type=int, help="LoRA rank (default 8)")
    train.add_argument("--lr", type=float, dest="learning_rate")
    train.add_argument("--head-lr", type=float, dest="head_learning_rate", help="LoRA: the classifier's learning rate")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--patience", type=int)
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--seed", type=int)
    train.add_argument("--force", action="store_true", help="activate even if worse than the active adapter")
    train.add_argument("--compare-scratch", action="store_true", help="also train from random weights and report the transfer gain")
    train.add_argument("--wait", action="store_true", help="show progress until the job ends")
    train.add_argument("--json", action="store_true", help="end with a JSON summary on stdout")
    train.set_defaults(func=cmd_train)

    jobs, job_actions = group("jobs", "list, watch or cancel training jobs", {"list": "list jobs", "watch": "follow a job's progress", "cancel": "cancel a job"}, default="list")
    for p in (jobs, *job_actions.values()):
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_jobs, job_id=None, task="")
    job_actions["list"].add_argument("--task", default="")
    job_actions["watch"].add_argument("job_id")
    job_actions["cancel"].add_argument("job_id")

    evaluate = client("eval", "classify a labelled ImageFolder tree through the server and score it")
    evaluate.add_argument("--task", required=True)
    evaluate.add_argument("dir", type=Path, metavar="DIR")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_eval)

    _, adapters = group("adapters", "list, activate or roll back adapter versions", {"list": "a task's versions", "activate": "activate a version", "rollback": "go back to the previously active version"})
    adapters["activate"].add_argument("version")
    for p in adapters.values():
        p.add_argument("--task", required=True)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_adapters, version=None)
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


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def _image_folder(root: Path) -> list[tuple[str, Path]]:
    """(class, file) pairs of an ImageFolder tree: root/<class>/<image>."""
    if not root.is_dir():
        raise CliError(f"{root} is not a directory (expected DIR/<class>/*.png)", EXIT_USAGE)
    pairs = [(d.name, f) for d in sorted(root.iterdir()) if d.is_dir() for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not pairs:
        raise CliError(f"no images under {root}/<class>/ (png, jpg, bmp)")
    return pairs


class _Progress:
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


def cmd_label(args) -> int:
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, model_pb2, model_pb2_grpc

    with _channel(args) as channel:
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        if args.action == "counts":
            counts = _call(args, labels.GetLabelCounts, adapt_pb2.GetLabelCountsRequest(task=args.task))
            _print_counts(args, counts)
            return 0
        if args.action == "import":
            if len(args.paths) != 1:
                raise CliError("label import takes one DIR (an ImageFolder tree: DIR/<class>/*.png)", EXIT_USAGE)
            pairs = _image_folder(args.paths[0])
            models = model_pb2_grpc.ModelServiceStub(channel)
            try:
                models.GetTask(model_pb2.GetTaskRequest(name=args.task), timeout=args.timeout)
            except Exception:  # the task does not exist yet: its classes are the folder names
                classes = sorted({c for c, _ in pairs})
                _call(args, models.CreateTask, model_pb2.CreateTaskRequest(name=args.task, class_names=classes))
                print(f"created task {args.task} with classes {', '.join(classes)}", file=sys.stderr)
        else:
            if not args.class_name or not args.paths:
                raise CliError("label add needs --class C and one or more FILEs", EXIT_USAGE)
            pairs = [(args.class_name, p) for p in args.paths]
        progress = _Progress(len(pairs), "labelling")
        failures, counts = 0, None
        for class_name, path in pairs:
            try:
                data = path.read_bytes()
                r = _call(args, labels.AddLabel, adapt_pb2.AddLabelRequest(task=args.task, image=image_pb2.Image(encoded=data), class_name=class_name, operator_id=args.operator))
                counts = r.counts
            except OSError as exc:
                failures += 1
                print(f"\nedgetl: error: cannot read {path}: {exc.strerror}", file=sys.stderr)
            except CliError as exc:
                if exc.code == EXIT_UNREACHABLE:
                    raise
                failures += 1
                print(f"\nedgetl: error: {path}: {exc}", file=sys.stderr)
            progress.step(path.name)
        if counts is not None:
            _print_counts(args, counts)
    if failures:
        raise CliError(f"{failures} of {len(pairs)} images were not labelled")
    return 0


def _print_counts(args, counts) -> None:
    if args.json:
        _print_json({"task": counts.task, "per_class": dict(counts.per_class), "total": counts.total, "train": counts.train, "val": counts.val})
    else:
        per_class = ", ".join(f"{k}: {v}" for k, v in sorted(counts.per_class.items()))
        print(f"task {counts.task}: {counts.total} labels ({counts.train} train, {counts.val} validation); {per_class}")


def _metrics_dict(m) -> dict | None:
    if not m.n:
        return None
    return {"accuracy": round(m.accuracy, 6), "n": m.n, "per_class": {c.label: {"precision": round(c.precision, 6), "recall": round(c.recall, 6), "support": c.support} for c in m.per_class}}


def _job_summary(job) -> dict:
    summary = {
        "job_id": job.id, "task": job.task, "method": job.method, "state": job.state, "version": job.version or None,
        "val_accuracy": round(job.metrics.accuracy, 6) if job.metrics.n else None, "activated": job.activated, "gate": job.gate,
        "metrics": _metrics_dict(job.metrics), "active_metrics": _metrics_dict(job.active_metrics),
    }
    if job.scratch_metrics.n:
        summary["scratch_val_accuracy"] = round(job.scratch_metrics.accuracy, 6)
        summary["transfer_gain"] = round(job.metrics.accuracy - job.scratch_metrics.accuracy, 6)
    if job.error:
        summary["error"] = job.error
    return summary


def _watch(args, stub, job_id: str):
    """Stream a job's progress to stderr; returns the finished Job message."""
    from edgetl.api.v1 import adapt_pb2

    final = None
    for event in stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job_id)):
        parts = [f"[{event.elapsed_s:6.1f}s] {event.phase}"]
        if event.epochs:
            parts.append(f"{event.epoch}/{event.epochs}")
        if event.loss:
            parts.append(f"loss {event.loss:.4f}")
        if event.val_accuracy:
            parts.append(f"val acc {event.val_accuracy:.3f}")
        if event.eta_s:
            parts.append(f"eta {event.eta_s:.0f}s")
        if event.message:
            parts.append(event.message)
        print("  ".join(parts), file=sys.stderr, flush=True)
        if event.HasField("job"):
            final = event.job
    return final


def cmd_train(args) -> int:
    import grpc

    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc

    options = adapt_pb2.TrainingOptions()
    for name in ("epochs", "rank", "learning_rate", "head_learning_rate", "batch_size", "patience", "seed"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    if args.no_augment:
        options.augment = False
    with _channel(args) as channel:
        stub = adapt_pb2_grpc.TrainingServiceStub(channel)
        job = _call(args, stub.StartTraining, adapt_pb2.StartTrainingRequest(task=args.task, method=args.method, options=options, force=args.force, compare_scratch=args.compare_scratch))
        if not args.wait:
            _print_json(_job_summary(job)) if args.json else print(f"started job {job.id} ({job.method}, task {job.task}); watch it with: edgetl jobs watch {job.id}")
            return 0
        try:
            final = _watch(args, stub, job.id)
        except grpc.RpcError as exc:
            raise CliError(f"lost the job's progress stream ({exc.code().name}: {exc.details()}); the job may go on: edgetl jobs watch {job.id}") from None
    final = final or _call(args, stub.ListJobs, adapt_pb2.ListJobsRequest(task=args.task)).jobs[-1]
    summary = _job_summary(final)
    if args.json:
        _print_json(summary)
    else:
        print(f"job {final.id}: {final.state}; version {final.version or '-'}; validation accuracy {summary['val_accuracy']}; {final.gate or final.error}")
    if final.state != "succeeded":
        raise CliError(f"training {final.state}: {final.error or final.gate}")
    return 0


def cmd_jobs(args) -> int:
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc

    with _channel(args) as channel:
        stub = adapt_pb2_grpc.TrainingServiceStub(channel)
        if args.action in ("watch", "cancel") and not args.job_id:
            raise CliError(f"jobs {args.action} needs a JOB_ID", EXIT_USAGE)
        if args.action == "watch":
            final = _watch(args, stub, args.job_id)
            jobs = [final] if final else []
        elif args.action == "cancel":
            jobs = [_call(args, stub.CancelJob, adapt_pb2.CancelJobRequest(job_id=args.job_id))]
        else:
            jobs = _call(args, stub.ListJobs, adapt_pb2.ListJobsRequest(task=args.task)).jobs
    for job in jobs:
        if args.json:
            _print_json(_job_summary(job))
        else:
            print(f"{job.id}  {job.task:20} {job.method:5} {job.state:10} version {job.version or '-':4} {job.gate or job.error}")
    return 0


def cmd_eval(args) -> int:
    from edgetl.adapt.metrics import metrics
    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc

    pairs = _image_folder(args.dir)
    with _channel(args) as channel:
        task = _call(args, model_pb2_grpc.ModelServiceStub(channel).GetTask, model_pb2.GetTaskRequest(name=args.task))
        class_names = list(task.class_names)
        unknown = sorted({c for c, _ in pairs} - set(class_names))
        if unknown:
            raise CliError(f"{args.dir} has classes the task does not: {unknown}; task {args.task} has {class_names}")
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        progress = _Progress(len(pairs), "evaluating")
        y_true, y_pred, versions = [], [], set()
        for class_name, path in pairs:
            r = _call(args, stub.Classify, inference_pb2.ClassifyRequest(task=args.task, image=image_pb2.Image(encoded=path.read_bytes()), top_k=1))
            y_true.append(class_names.index(class_name))
            y_pred.append(class_names.index(r.label))
            versions.add(r.adapter_version)
            progress.step()
    result = {"task": args.task, **metrics(y_true, y_pred, class_names), "class_names": class_names, "adapter_versions": sorted(versions)}
    if args.json:
        _print_json(result)
    else:
        print(f"task {args.task}: accuracy {result['accuracy']:.3f} on {result['n']} images (adapter {', '.join(sorted(versions))})")
        for name, m in result["per_class"].items():
            print(f"  {name:20} precision {m['precision']:.3f}  recall {m['recall']:.3f}  n {m['support']}")
    return 0


def cmd_adapters(args) -> int:
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc

    with _channel(args) as channel:
        stub = adapt_pb2_grpc.AdapterServiceStub(channel)
        if args.action == "activate":
            if not args.version:
                raise CliError("adapters activate needs a VERSION", EXIT_USAGE)
            adapters = [_call(args, stub.ActivateAdapter, adapt_pb2.ActivateAdapterRequest(task=args.task, version=args.version))]
        elif args.action == "rollback":
            adapters = [_call(args, stub.Rollback, adapt_pb2.RollbackRequest(task=args.task))]
        else:
            adapters = _call(args, stub.ListAdapters, adapt_pb2.ListAdaptersRequest(task=args.task)).adapters
    for a in adapters:
        if args.json:
            _print_json({"task": a.task, "version": a.version, "method": a.method, "state": a.state, "val_accuracy": round(a.metrics.accuracy, 6), "labels": a.label_count, "backbone": a.backbone, "created_at": a.created_at})
        else:
            print(f"v{a.version:<4} {a.method:5} {a.state:9} val acc {a.metrics.accuracy:.3f}  labels {a.label_count:5}  {a.backbone}")
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
