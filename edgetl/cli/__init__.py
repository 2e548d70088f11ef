"""`edgetl`: run the server and talk to it.

Client commands reach a running server at --server (default localhost:50051,
or $EDGETL_SERVER). Errors print one line to stderr and exit non-zero:
1 the request failed, 2 bad usage, 3 the server could not be reached.
Command modules import grpc and the stubs only when a command runs, and
none imports torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import edgetl
from edgetl.cli.adapt import cmd_adapters, cmd_enroll, cmd_eval, cmd_jobs, cmd_label, cmd_threshold, cmd_train
from edgetl.cli.common import DEFAULT_SERVER, CliError, Parser
from edgetl.cli.inference import cmd_backbones, cmd_drift, cmd_predict, cmd_tasks
from edgetl.cli.review import add_review_arguments, cmd_review
from edgetl.cli.serve import cmd_serve


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="edgetl", description="On-device transfer learning for visual inspection.")
    parser.add_argument("--version", action="version", version=f"edgetl {edgetl.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--data-dir", type=Path, help="where exports, tasks and labels live (default ./edgetl-data, or $EDGETL_DATA_DIR)")
    serve.add_argument("--config", type=Path, help="settings file (default DATA_DIR/edgetl.toml if present)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 50051; 0 picks a free one)")
    serve.add_argument("--providers", help="ONNX Runtime providers in order, e.g. tensorrt,cuda,cpu")
    serve.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9464; 0 picks a free one)")
    serve.add_argument("--log-format", choices=["text", "json"], help="log lines as text (default) or one JSON object each")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--insecure", action="store_true", default=None, help="allow a non-loopback address without TLS or tokens")
    serve.add_argument("--terminal-port", type=int, help="the operator terminal's port (default 8080; 0 picks a free one)")
    serve.add_argument("--no-terminal", dest="terminal", action="store_false", default=None, help="do not start the operator terminal")
    serve.set_defaults(func=cmd_serve)


    def client_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--server", default=os.environ.get("EDGETL_SERVER", DEFAULT_SERVER), help="HOST:PORT (default $EDGETL_SERVER or localhost:50051)")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
        p.add_argument("--tls-ca", help="CA that signed the server's certificate: use TLS (or $EDGETL_TLS_CA)")
        p.add_argument("--tls-cert", help="client certificate for mutual TLS (or $EDGETL_TLS_CERT)")
        p.add_argument("--tls-key", help="client key for mutual TLS (or $EDGETL_TLS_KEY)")
        p.add_argument("--token", help="bearer token (or $EDGETL_TOKEN)")
        return p

    def client(name: str, help: str) -> argparse.ArgumentParser:
        return client_options(sub.add_parser(name, help=help))

    def group(name: str, help: str, actions: dict[str, str], default: str | None = None):
        """A command with actions (`edgetl label import ...`), each a parser of its own."""
        p = sub.add_parser(name, help=help)
        actions_sub = p.add_subparsers(dest="action", required=default is None, parser_class=Parser)
        parsers = {action: client_options(actions_sub.add_parser(action, help=text)) for action, text in actions.items()}
        if default:
            client_options(p)
            p.set_defaults(action=default)
        return p, parsers

    terminal = client_options(sub.add_parser("terminal", help="run the operator terminal (a web page) for a server elsewhere"))
    terminal.add_argument("--host", default="127.0.0.1", help="address to serve the page on (default 127.0.0.1)")
    terminal.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    terminal.add_argument("--https-cert", default="", help="serve HTTPS with this certificate (PEM); needed off loopback")
    terminal.add_argument("--https-key", default="", help="its private key")
    terminal.add_argument("--session-idle", type=float, default=3600.0, help="seconds a signed-in session lasts unused (default 3600)")
    terminal.add_argument("--insecure", action="store_true", help="allow plain HTTP on a non-loopback address")
    terminal.set_defaults(func=cmd_terminal)

    backbones = client("backbones", "list the server's backbones")
    backbones.add_argument("--json", action="store_true", help="one JSON object per backbone")
    backbones.set_defaults(func=cmd_backbones)

    tasks, task_actions = group(
        "tasks", "list or create tasks, or add a class", {"list": "list tasks", "create": "create a task", "add-class": "add a class (a new defect type) to a task"}, default="list"
    )
    for p in (tasks, *task_actions.values()):
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_tasks, name=None, classes=None, backbone="", class_name=None, kind="classify")
    task_actions["create"].add_argument("name", help="task name")
    task_actions["create"].add_argument("--classes", help="comma-separated class names, e.g. ok,scratch,dent (a classify task)")
    task_actions["create"].add_argument(
        "--kind", choices=["classify", "anomaly"], default="classify", help="anomaly: trained from good parts only; its classes are good and anomaly"
    )
    task_actions["create"].add_argument("--backbone", default="", help="default: the server's")
    task_actions["add-class"].add_argument("name", help="task name")
    task_actions["add-class"].add_argument("--class", dest="class_name", required=True, help="the new class, e.g. porosity")

    drift = client("drift", "does what each task sees still look like what its adapter learned from? (exit 4 if a task has drifted)")
    drift.add_argument("--task", default="", help="one task; default: every task with an adapter")
    drift.add_argument("--json", action="store_true", help="one JSON object per task")
    drift.set_defaults(func=cmd_drift)

    health = client("health", "exit 0 if the server answers SERVING (for container and Kubernetes probes)")
    health.add_argument("--service", default="", help="a service name; default: the whole server")
    health.set_defaults(func=cmd_health)

    predict = client("predict", "classify image files")
    predict.add_argument("--task", required=True, help="task name, e.g. imagenet; several, comma-separated, share one backbone run per image")
    predict.add_argument("--json", action="store_true", help="one JSON object per file")
    predict.add_argument("--top-k", type=int, default=5, help="classes listed in `scores` (default 5)")
    predict.add_argument("--flag", action="store_true", help="keep the images for an operator to review (reason flagged)")
    predict.add_argument("--map", dest="map_dir", type=Path, help="anomaly tasks: write each file's heatmap as DIR/<file>.anomaly.png")
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
    train.add_argument(
        "--method", choices=["auto", "head", "lora", "anomaly"], default="auto",
        help="auto (default): a head, then LoRA if it does better and fits --time-budget; on an anomaly task, anomaly (a bank of good patches)",
    )
    train.add_argument("--time-budget", type=int, dest="time_budget_s", help="auto: the most seconds LoRA may take (default 300)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--rank", type=int, help="LoRA rank (default 8)")
    train.add_argument("--lr", type=float, dest="learning_rate")
    train.add_argument("--head-lr", type=float, dest="head_learning_rate", help="LoRA: the classifier's learning rate")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--patience", type=int)
    train.add_argument("--views", type=int, help="head (and a guided head on LoRA's maps): fit each image in this many of its flips and turns (1-8, default 8); anomaly: enrol each good image in this many (default 8)")
    train.add_argument("--max-patches", type=int, help="anomaly, and a guided head's good bank: the most patches the bank keeps (default 4096)")
    train.add_argument(
        "--pooling", choices=["auto", "guided", "global"],
        help="head and lora: guided looks where a part differs from the good class (auto, the default, when the task has one; for lora, a guided head on the tuned maps); global pools the whole image",
    )
    train.add_argument("--good-class", help="head and lora: the class of good parts, for guided pooling (default: a class named ok, good, pass, normal…)")
    train.add_argument(
        "--serve-views", type=int, choices=[1, 2, 4, 8],
        help="head, lora, auto: answer each image from this many of its flips and turns, averaged (test-time augmentation; "
        "that many backbone runs per image; default 1)",
    )
    train.add_argument("--false-alarm-rate", type=float, help="anomaly: the false-alarm rate on good parts the threshold is set for (default 0.01)")
    train.add_argument(
        "--precision", choices=["fp32", "int8"],
        help="head, lora, auto: int8 quantizes the backbone, calibrated on the task's labels (about 2x faster on a VNNI CPU); "
        "kept as a candidate if it loses accuracy against fp32 beyond chance. Default: the server's [training] precision (fp32)",
    )
    train.add_argument("--refit-epochs", type=int, help="LoRA: epochs the served model goes on with the validation images added (default 2; 0: serve the holdout model, its guided head still refitted on every label: faster, less accurate)")
    train.add_argument("--lora-min-stride", type=int, help="LoRA: adapt only the layers at this output stride or coarser (1, 2, 4, 8, 16, 32; default 8: the high-resolution layers stay frozen, a training step ~2x faster; 1: every layer)")
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

    token = sub.add_parser("token", help="make a bearer token for [security.tokens]")
    token.add_argument("action", choices=["new"])
    token.add_argument("--name", required=True, help="who will use it, e.g. terminal-3")
    token.add_argument("--role", required=True, choices=["inference", "operator", "admin"])
    token.set_defaults(func=cmd_token)

    audit = sub.add_parser("audit", help="read the audit log (on the server's machine)")
    audit.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EDGETL_DATA_DIR", "edgetl-data")))
    audit.add_argument("--task", default="")
    audit.add_argument("--who", default="")
    audit.add_argument("--since", type=float, default=0.0, help="unix time")
    audit.set_defaults(func=cmd_audit)

    export = sub.add_parser("export", help="export a task for another serving engine (on the server's machine)")
    export_to = export.add_subparsers(dest="target", required=True, metavar="TARGET")
    triton = export_to.add_parser("triton", help="a Triton model repository serving the task's active adapter")
    triton.add_argument("--task", required=True)
    triton.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EDGETL_DATA_DIR", "edgetl-data")))
    triton.add_argument("--max-batch", type=int, default=8, help="Triton max_batch_size (default 8)")
    triton.add_argument("out", type=Path, metavar="OUT", help="the model repository directory (created if missing)")
    triton.set_defaults(func=cmd_export_triton)

    _, review = group(
        "review",
        "the review queue: what the line sent that an operator should look at",
        {
            "list": "items of a task's queue", "show": "one item (--save FILE writes its image)", "accept": "the prediction was right: label it so",
            "relabel": "label items as --class C", "reject": "discard unusable images", "skip": "set aside for later",
            "summary": "pending counts per task", "accuracy": "live accuracy per adapter version, from reviewed random samples",
            "policy": "show or change a task's capture policy (admin)",
        },
    )
    add_review_arguments(review)
    for p in review.values():
        p.set_defaults(func=cmd_review)

    enroll = client("enroll", "anomaly tasks: add confirmed good parts to the active bank, no training job (a new version each)")
    enroll.add_argument("--task", required=True)
    enroll.add_argument("--operator", default=os.environ.get("USER", ""), help="who confirmed them (without security; default $USER)")
    enroll.add_argument("--json", action="store_true", help="one JSON object per file")
    enroll.add_argument("files", nargs="+", type=Path, metavar="FILE")
    enroll.set_defaults(func=cmd_enroll)

    threshold = client("threshold", "anomaly tasks: set the sensitivity, for a false-alarm rate or to a score (a new version, activated)")
    threshold.add_argument("--task", required=True)
    target = threshold.add_mutually_exclusive_group(required=True)
    target.add_argument("--false-alarm-rate", type=float, help="flag about this share of good parts, e.g. 0.02 (training uses 0.01)")
    target.add_argument("--value", type=float, help="this score: parts scoring above it are anomalous")
    threshold.add_argument("--operator", default=os.environ.get("USER", ""), help="who set it (without security; default $USER)")
    threshold.add_argument("--json", action="store_true")
    threshold.set_defaults(func=cmd_threshold)

    _, adapters = group("adapters", "list, activate or roll back adapter versions", {"list": "a task's versions", "activate": "activate a version", "rollback": "go back to the previously active version"})
    adapters["activate"].add_argument("version")
    for p in adapters.values():
        p.add_argument("--task", required=True)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_adapters, version=None)
    return parser


# -- serve ---------------------------------------------------------------------


def cmd_terminal(args) -> int:
    """The terminal on its own, for a server on another machine: its gRPC client uses the usual TLS flags."""
    import asyncio
    import os
    import signal

    from edgetl.errors import EdgetlError
    from edgetl.logs import configure_logging
    from edgetl.terminal.app import Terminal, TerminalConfig
    from edgetl.terminal.client import ChannelSpec

    configure_logging("INFO", "text")
    spec = ChannelSpec(
        args.server, ca=args.tls_ca or os.environ.get("EDGETL_TLS_CA", ""), cert=args.tls_cert or os.environ.get("EDGETL_TLS_CERT", ""),
        key=args.tls_key or os.environ.get("EDGETL_TLS_KEY", ""),
    )
    if bool(spec.cert) != bool(spec.key):
        raise CliError("--tls-cert and --tls-key go together", 2)
    config = TerminalConfig(args.host, args.port, args.session_idle, args.https_cert, args.https_key, args.insecure)

    async def run() -> None:
        terminal = Terminal(spec, config)
        url = await terminal.start()
        print(f"edgetl terminal ready on {url} (server {args.server})", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await terminal.stop()

    try:
        asyncio.run(run())
    except EdgetlError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_token(args) -> int:
    from edgetl.server.security import hash_token, new_token

    token = new_token()
    print(f"token for {args.name} ({args.role}), shown once; give it to them and keep only the hash:", file=sys.stderr)
    print(token)
    print(f'add to edgetl.toml under [security.tokens]:\n"{hash_token(token)}" = {{ name = "{args.name}", role = "{args.role}" }}', file=sys.stderr)
    return 0


def cmd_audit(args) -> int:
    import json

    from edgetl import audit

    for entry in audit.read(args.data_dir / "audit.jsonl", args.task, args.who, args.since):
        print(json.dumps(entry, sort_keys=True))
    return 0


def cmd_health(args) -> int:
    """The standard gRPC health check; TLS flags work, so probes pass a mutual-TLS server too."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from edgetl.cli.common import call, open_channel

    with open_channel(args) as channel:
        status = call(args, health_pb2_grpc.HealthStub(channel).Check, health_pb2.HealthCheckRequest(service=args.service)).status
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    print(name)
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


def cmd_export_triton(args) -> int:
    from edgetl.errors import EdgetlError
    from edgetl.exporters.triton import export_triton

    if not (args.data_dir / "edgetl.db").is_file():
        raise CliError(f"{args.data_dir} is not an edgetl data directory (no edgetl.db); pass --data-dir")
    try:
        exported = export_triton(args.data_dir, args.task, args.out, args.max_batch)
    except EdgetlError as exc:
        raise CliError(str(exc)) from exc
    h, w = exported.input_size
    print(f"exported task {exported.task} (adapter v{exported.adapter_version}) to {args.out}: models {', '.join(p.name for p in exported.models.values())}")
    print(f"input: pixels UINT8 [N, {h}, {w}, 3] RGB; output: scores FP32 [N, {len(exported.class_names)}] with labels.txt")
    return 0


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
