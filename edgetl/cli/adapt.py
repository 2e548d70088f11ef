"""Client commands for the adaptation loop: label, train, jobs, eval, adapters."""

from __future__ import annotations

import sys

from edgetl.cli.common import EXIT_UNREACHABLE, EXIT_USAGE, CliError, Progress, call, image_folder, metadata, open_channel, print_json


def cmd_label(args) -> int:
    import grpc

    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, model_pb2, model_pb2_grpc

    with open_channel(args) as channel:
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        if args.action == "counts":
            counts = call(args, labels.GetLabelCounts, adapt_pb2.GetLabelCountsRequest(task=args.task))
            print_counts(args, counts)
            return 0
        if args.action == "import":
            if len(args.paths) != 1:
                raise CliError("label import takes one DIR (an ImageFolder tree: DIR/<class>/*.png)", EXIT_USAGE)
            pairs = image_folder(args.paths[0])
            models = model_pb2_grpc.ModelServiceStub(channel)
            try:
                models.GetTask(model_pb2.GetTaskRequest(name=args.task), timeout=args.timeout, metadata=metadata(args))
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    call(args, models.GetTask, model_pb2.GetTaskRequest(name=args.task))  # reports it as every call does
                # The task does not exist yet: its classes are the folder names.
                classes = sorted({c for c, _ in pairs})
                call(args, models.CreateTask, model_pb2.CreateTaskRequest(name=args.task, class_names=classes))
                print(f"created task {args.task} with classes {', '.join(classes)}", file=sys.stderr)
        else:
            if not args.class_name or not args.paths:
                raise CliError("label add needs --class C and one or more FILEs", EXIT_USAGE)
            pairs = [(args.class_name, p) for p in args.paths]
        progress = Progress(len(pairs), "labelling")
        failures, counts = 0, None
        for class_name, path in pairs:
            try:
                data = path.read_bytes()
                r = call(args, labels.AddLabel, adapt_pb2.AddLabelRequest(task=args.task, image=image_pb2.Image(encoded=data), class_name=class_name, operator_id=args.operator))
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
            print_counts(args, counts)
    if failures:
        raise CliError(f"{failures} of {len(pairs)} images were not labelled")
    return 0


def print_counts(args, counts) -> None:
    if args.json:
        print_json({"task": counts.task, "per_class": dict(counts.per_class), "total": counts.total, "train": counts.train, "val": counts.val})
    else:
        per_class = ", ".join(f"{k}: {v}" for k, v in sorted(counts.per_class.items()))
        print(f"task {counts.task}: {counts.total} labels ({counts.train} train, {counts.val} validation); {per_class}")


def metrics_dict(m) -> dict | None:
    if not m.n:
        return None
    return {"accuracy": round(m.accuracy, 6), "n": m.n, "per_class": {c.label: {"precision": round(c.precision, 6), "recall": round(c.recall, 6), "support": c.support} for c in m.per_class}}


def job_summary(job) -> dict:
    summary = {
        "job_id": job.id, "task": job.task, "method": job.method, "state": job.state, "version": job.version or None,
        "val_accuracy": round(job.metrics.accuracy, 6) if job.metrics.n else None, "activated": job.activated, "gate": job.gate,
        "metrics": metrics_dict(job.metrics), "active_metrics": metrics_dict(job.active_metrics),
    }
    if job.scratch_metrics.n:
        summary["scratch_val_accuracy"] = round(job.scratch_metrics.accuracy, 6)
        summary["transfer_gain"] = round(job.metrics.accuracy - job.scratch_metrics.accuracy, 6)
    if job.error:
        summary["error"] = job.error
    return summary


def watch_job(args, stub, job_id: str):
    """Stream a job's progress to stderr; returns the finished Job message."""
    from edgetl.api.v1 import adapt_pb2

    final = None
    for event in stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job_id), metadata=metadata(args)):
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
    for name in ("epochs", "rank", "learning_rate", "head_learning_rate", "batch_size", "patience", "seed", "refit_epochs", "time_budget_s", "views", "max_patches", "false_alarm_rate", "precision", "pooling", "good_class", "serve_views", "lora_min_stride"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    if args.no_augment:
        options.augment = False
    with open_channel(args) as channel:
        stub = adapt_pb2_grpc.TrainingServiceStub(channel)
        job = call(args, stub.StartTraining, adapt_pb2.StartTrainingRequest(task=args.task, method=args.method, options=options, force=args.force, compare_scratch=args.compare_scratch))
        if not args.wait:
            print_json(job_summary(job)) if args.json else print(f"started job {job.id} ({job.method}, task {job.task}); watch it with: edgetl jobs watch {job.id}")
            return 0
        try:
            final = watch_job(args, stub, job.id)
        except grpc.RpcError as exc:
            raise CliError(f"lost the job's progress stream ({exc.code().name}: {exc.details()}); the job may go on: edgetl jobs watch {job.id}") from None
    final = final or call(args, stub.ListJobs, adapt_pb2.ListJobsRequest(task=args.task)).jobs[-1]
    summary = job_summary(final)
    if args.json:
        print_json(summary)
    else:
        print(f"job {final.id}: {final.state}; version {final.version or '-'}; validation accuracy {summary['val_accuracy']}; {final.gate or final.error}")
    if final.state != "succeeded":
        raise CliError(f"training {final.state}: {final.error or final.gate}")
    return 0


def cmd_jobs(args) -> int:
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc

    with open_channel(args) as channel:
        stub = adapt_pb2_grpc.TrainingServiceStub(channel)
        if args.action in ("watch", "cancel") and not args.job_id:
            raise CliError(f"jobs {args.action} needs a JOB_ID", EXIT_USAGE)
        if args.action == "watch":
            final = watch_job(args, stub, args.job_id)
            jobs = [final] if final else []
        elif args.action == "cancel":
            jobs = [call(args, stub.CancelJob, adapt_pb2.CancelJobRequest(job_id=args.job_id))]
        else:
            jobs = call(args, stub.ListJobs, adapt_pb2.ListJobsRequest(task=args.task)).jobs
    for job in jobs:
        if args.json:
            print_json(job_summary(job))
        else:
            print(f"{job.id}  {job.task:20} {job.method:5} {job.state:10} version {job.version or '-':4} {job.gate or job.error}")
    return 0


def cmd_eval(args) -> int:
    from edgetl.adapt.metrics import metrics
    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc

    pairs = image_folder(args.dir)
    with open_channel(args) as channel:
        task = call(args, model_pb2_grpc.ModelServiceStub(channel).GetTask, model_pb2.GetTaskRequest(name=args.task))
        class_names = list(task.class_names)
        unknown = sorted({c for c, _ in pairs} - set(class_names))
        if unknown:
            raise CliError(f"{args.dir} has classes the task does not: {unknown}; task {args.task} has {class_names}")
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        progress = Progress(len(pairs), "evaluating")
        y_true, y_pred, versions = [], [], set()
        for class_name, path in pairs:
            r = call(args, stub.Classify, inference_pb2.ClassifyRequest(task=args.task, image=image_pb2.Image(encoded=path.read_bytes()), top_k=1))
            y_true.append(class_names.index(class_name))
            y_pred.append(class_names.index(r.label))
            versions.add(r.adapter_version)
            progress.step()
    result = {"task": args.task, **metrics(y_true, y_pred, class_names), "class_names": class_names, "adapter_versions": sorted(versions)}
    if args.json:
        print_json(result)
    else:
        print(f"task {args.task}: accuracy {result['accuracy']:.3f} on {result['n']} images (adapter {', '.join(sorted(versions))})")
        for name, m in result["per_class"].items():
            print(f"  {name:20} precision {m['precision']:.3f}  recall {m['recall']:.3f}  n {m['support']}")
    return 0


def cmd_enroll(args) -> int:
    """Each file becomes a good label and a new bank version, activated at once."""
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2

    with open_channel(args) as channel:
        stub = adapt_pb2_grpc.AdapterServiceStub(channel)
        for path in args.files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CliError(f"cannot read {path}: {exc.strerror}") from exc
            r = call(args, stub.EnrollGood, adapt_pb2.EnrollGoodRequest(task=args.task, image=image_pb2.Image(encoded=data), operator_id=args.operator))
            if args.json:
                print_json(
                    {"file": str(path), "version": r.version, "parent_version": r.parent_version, "score": round(r.score, 6), "threshold": round(r.threshold, 6),
                     "previous_threshold": round(r.previous_threshold, 6), "patches_added": r.patches_added, "bank_patches": r.bank_patches, "elapsed_ms": round(r.elapsed_ms, 1)}
                )
            else:
                print(
                    f"{path}: v{r.version} (from v{r.parent_version}): score {r.score:.3f}, {r.patches_added} new patches ({r.bank_patches} in the bank), "
                    f"threshold {r.previous_threshold:.3f} -> {r.threshold:.3f}  [{r.elapsed_ms:.0f} ms]"
                )
    return 0


def cmd_threshold(args) -> int:
    """The task's active bank with a new threshold, as a new version; says what it means for good parts."""
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc

    request = adapt_pb2.SetAnomalyThresholdRequest(task=args.task, operator_id=args.operator)
    if args.value is not None:
        request.threshold = args.value
    else:
        request.false_alarm_rate = args.false_alarm_rate
    with open_channel(args) as channel:
        r = call(args, adapt_pb2_grpc.AdapterServiceStub(channel).SetAnomalyThreshold, request)
    if args.json:
        print_json(
            {"task": args.task, "version": r.version, "parent_version": r.parent_version, "threshold": round(r.threshold, 6), "previous_threshold": round(r.previous_threshold, 6),
             "false_alarm_rate": round(r.false_alarm_rate, 6), "guaranteed_false_alarm_rate": round(r.guaranteed_false_alarm_rate, 6),
             "good_images": r.good_images, "good_images_above": r.good_images_above}
        )
    else:
        print(
            f"task {args.task}: v{r.version} (from v{r.parent_version}) serving: threshold {r.previous_threshold:.3f} -> {r.threshold:.3f}; "
            f"about {100 * r.false_alarm_rate:.1f} % of good parts flagged (model), at most {100 * r.guaranteed_false_alarm_rate:.1f} % without one "
            f"({r.good_images_above} of {r.good_images} good images above it). Roll back: edgetl adapters rollback --task {args.task}"
        )
    return 0


def cmd_adapters(args) -> int:
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc

    with open_channel(args) as channel:
        stub = adapt_pb2_grpc.AdapterServiceStub(channel)
        if args.action == "activate":
            if not args.version:
                raise CliError("adapters activate needs a VERSION", EXIT_USAGE)
            adapters = [call(args, stub.ActivateAdapter, adapt_pb2.ActivateAdapterRequest(task=args.task, version=args.version))]
        elif args.action == "rollback":
            adapters = [call(args, stub.Rollback, adapt_pb2.RollbackRequest(task=args.task))]
        else:
            adapters = call(args, stub.ListAdapters, adapt_pb2.ListAdaptersRequest(task=args.task)).adapters
    for a in adapters:
        if args.json:
            print_json({"task": a.task, "version": a.version, "method": a.method, "state": a.state, "val_accuracy": round(a.metrics.accuracy, 6), "labels": a.label_count, "backbone": a.backbone, "created_at": a.created_at})
        else:
            print(f"v{a.version:<4} {a.method:5} {a.state:9} val acc {a.metrics.accuracy:.3f}  labels {a.label_count:5}  {a.backbone}")
    return 0
