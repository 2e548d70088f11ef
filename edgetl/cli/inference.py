"""Client commands for serving: backbones, tasks, predict."""

from __future__ import annotations

from edgetl.cli.common import EXIT_UNREACHABLE, EXIT_USAGE, CliError, call, open_channel, print_json, report_failure


def cmd_backbones(args) -> int:
    from edgetl.api.v1 import model_pb2, model_pb2_grpc

    with open_channel(args) as channel:
        response = call(args, model_pb2_grpc.ModelServiceStub(channel).ListBackbones, model_pb2.ListBackbonesRequest())
    for b in response.backbones:
        if args.json:
            print_json(
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

    with open_channel(args) as channel:
        stub = model_pb2_grpc.ModelServiceStub(channel)
        if args.action == "create":
            if not args.name or not (args.classes or args.kind == "anomaly"):
                raise CliError("tasks create needs a NAME and --classes a,b,... (or --kind anomaly)", EXIT_USAGE)
            classes = [c for c in (args.classes or "").split(",") if c.strip()]
            request = model_pb2.CreateTaskRequest(name=args.name, class_names=classes, backbone=args.backbone, kind=args.kind)
            tasks = [call(args, stub.CreateTask, request)]
        elif args.action == "add-class":
            tasks = [call(args, stub.AddClass, model_pb2.AddClassRequest(task=args.name, class_name=args.class_name))]
        else:
            tasks = call(args, stub.ListTasks, model_pb2.ListTasksRequest()).tasks
    for t in tasks:
        if args.json:
            print_json({"name": t.name, "backbone": t.backbone, "classes": len(t.class_names), "class_names": list(t.class_names) if len(t.class_names) <= 50 else None, "active_adapter_version": t.active_adapter_version, "builtin": t.builtin, "kind": t.kind or "classify"})
        else:
            version = t.active_adapter_version or "no adapter yet"
            what = "anomaly      " if t.kind == "anomaly" else f"{len(t.class_names):5} classes"
            print(f"{t.name:24} {t.backbone:20} {what}  {version}")
    return 0


def cmd_predict(args) -> int:
    """Classify files; with several tasks (--task a,b), one ClassifyTasks call per file: one backbone run answers them all."""
    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc

    tasks = [t.strip() for t in args.task.split(",") if t.strip()]
    if not tasks:
        raise CliError("--task needs a task name (or several, comma-separated)", EXIT_USAGE)
    failures = 0
    with open_channel(args) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for path in args.files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                report_failure(args, path, f"cannot read {path}: {exc.strerror}")
                failures += 1
                continue
            image = image_pb2.Image(encoded=data)
            common = {"image": image, "top_k": args.top_k, "flag_for_review": args.flag, "request_id": path.name, "anomaly_map": bool(args.map_dir)}
            try:
                if len(tasks) == 1:
                    answers, runs = [call(args, stub.Classify, inference_pb2.ClassifyRequest(task=tasks[0], **common))], 1
                else:
                    r = call(args, stub.ClassifyTasks, inference_pb2.ClassifyTasksRequest(tasks=tasks, **common))
                    answers, runs = list(r.answers), r.backbone_runs
            except CliError as exc:
                if exc.code == EXIT_UNREACHABLE:
                    raise
                report_failure(args, path, f"{path}: {exc}")
                failures += 1
                continue
            for r in answers:
                _print_answer(args, path, r, runs if len(tasks) > 1 else None)
    if failures:
        raise CliError(f"{failures} of {len(args.files)} files failed")
    return 0


def _print_answer(args, path, r, backbone_runs: int | None) -> None:
    """One task's answer for one file: a line, or a JSON object (with the request's backbone runs when it asked several tasks)."""
    result = {
        "file": str(path),
        "task": r.task,
        "label": r.label,
        "score": round(r.score, 6),
        "scores": {c.label: round(c.score, 6) for c in r.top_classes},
        "adapter_version": r.adapter_version,
        "timing_ms": {"decode": round(r.timing.decode_ms, 3), "queue": round(r.timing.queue_ms, 3), "inference": round(r.timing.inference_ms, 3), "total": round(r.timing.total_ms, 3)},
    }
    if backbone_runs is not None:
        result["backbone_runs"] = backbone_runs
    verdict = ""
    if r.HasField("anomaly"):
        a = r.anomaly
        result["anomaly"] = {"score": round(a.score, 6), "threshold": round(a.threshold, 6), "anomalous": a.anomalous}
        verdict = f", anomaly score {a.score:.3f} vs threshold {a.threshold:.3f}"
        if args.map_dir and a.map_png:
            args.map_dir.mkdir(parents=True, exist_ok=True)
            # One heatmap per file and anomaly task, so two anomaly tasks do not overwrite each other.
            out = args.map_dir / (f"{path.name}.anomaly.png" if backbone_runs is None else f"{path.name}.{r.task}.anomaly.png")
            out.write_bytes(a.map_png)
            result["anomaly"]["map"] = str(out)
    if args.json:
        print_json(result)
    else:
        print(f"{path}: {r.label} ({r.score:.3f}{verdict})  [task {r.task}, adapter {r.adapter_version}, {r.timing.total_ms:.1f} ms]")


#: `edgetl drift`: some task has drifted (3 is "server unreachable").
EXIT_DRIFTED = 4


def cmd_drift(args) -> int:
    """Each task's drift state; exit 4 when one has drifted, so a cron job or a PLC script can act on it."""
    from edgetl.api.v1 import model_pb2, model_pb2_grpc

    with open_channel(args) as channel:
        stub = model_pb2_grpc.ModelServiceStub(channel)
        if args.task:
            tasks = [call(args, stub.GetTask, model_pb2.GetTaskRequest(name=args.task))]
        else:
            tasks = [t for t in call(args, stub.ListTasks, model_pb2.ListTasksRequest()).tasks if not t.builtin]
    drifted = False
    for t in tasks:
        d = t.drift
        if not t.active_adapter_version or not d.state:
            if args.json:
                print_json({"task": t.name, "state": None, "message": "no adapter: nothing is watched"})
            else:
                print(f"{t.name:24} {'-':8} no adapter: nothing is watched")
            continue
        drifted |= d.state == "drifted"
        if args.json:
            print_json(
                {"task": t.name, "adapter_version": d.adapter_version, "state": d.state, "since": d.since, "test": d.test, "statistic": d.statistic,
                 "threshold": d.threshold, "images": d.images, "window": d.window, "has_reference": d.has_reference, "burn_in_left": d.burn_in_left,
                 "last": dict(d.last), "message": d.message}
            )
        else:
            last = "  ".join(f"{k} {v:+.1f}" for k, v in sorted(d.last.items()))
            print(f"{t.name:24} {d.state:8} {d.message}" + (f"  [last window z: {last}]" if last else ""))
    return EXIT_DRIFTED if drifted else 0
