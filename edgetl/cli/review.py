"""Client commands for the review queue: list, show, resolve, summary, live accuracy, capture policy."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from edgetl.cli.common import EXIT_USAGE, CliError, call, open_channel, print_json

POLICY_FLAGS = ("enabled", "uncertain_score", "uncertain_margin", "random_rate", "per_minute", "per_hour", "per_day", "disk_bytes")
RESOLVING = ("accept", "relabel", "reject", "skip")


def add_review_arguments(actions: dict) -> None:
    """Arguments of each `edgetl review ACTION` parser (made by the CLI's `group`)."""
    listing = actions["list"]
    listing.add_argument("--task", required=True)
    listing.add_argument("--state", default="pending", help="pending (default), skipped, resolved, all, or a state")
    listing.add_argument("--reason", action="append", default=[], help="uncertain, random, flagged, ... (repeatable: any of them)")
    listing.add_argument("--predicted", default="", help="only items predicted as this class")
    listing.add_argument("--min-score", type=float)
    listing.add_argument("--max-score", type=float)
    listing.add_argument("--order", default="score", choices=["score", "-score", "time", "-time"], help="score: least sure first (default)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many items (default 50)")
    actions["show"].add_argument("item_id", type=int, metavar="ID")
    actions["show"].add_argument("--save", type=Path, metavar="FILE", help="write the item's image to FILE")
    for action in RESOLVING:
        actions[action].add_argument("item_ids", type=int, nargs="+", metavar="ID")
        actions[action].add_argument("--operator", default="", help="who resolved it, on a server without security (with security: your identity)")
        actions[action].add_argument("--task", default="", help="the items' task: checked, and recorded in the audit log")
    actions["relabel"].add_argument("--class", dest="class_name", required=True, help="the class the images really are")
    actions["summary"].add_argument("--task", default="", help="default: every task")
    actions["accuracy"].add_argument("--task", required=True)
    policy = actions["policy"]
    policy.add_argument("--task", required=True)
    policy.add_argument("--enabled", choices=["true", "false"])
    policy.add_argument("--uncertain-score", type=float, help="capture when the best score is below this")
    policy.add_argument("--uncertain-margin", type=float, help="or when best minus second best is below this")
    policy.add_argument("--random-rate", type=float, help="share of traffic sampled at random (0.005 = 1 in 200)")
    policy.add_argument("--per-minute", type=int)
    policy.add_argument("--per-hour", type=int)
    policy.add_argument("--per-day", type=int)
    policy.add_argument("--disk-mb", type=float, help="review images kept for the task, in MiB")
    policy.add_argument("--reset", action="store_true", help="back to the server's defaults (then apply any other flags)")
    for p in actions.values():
        p.add_argument("--json", action="store_true")


def cmd_review(args) -> int:
    from edgetl.api.v1 import review_pb2_grpc

    with open_channel(args) as channel:
        stub = review_pb2_grpc.ReviewServiceStub(channel)
        return _ACTIONS[args.action](args, stub)


def _list(args, stub) -> int:
    from edgetl.api.v1 import review_pb2

    request = review_pb2.ListReviewItemsRequest(
        task=args.task, state=args.state, reasons=args.reason, predicted=args.predicted, order=args.order, page_size=min(max(args.limit, 1), 500)
    )
    if args.min_score is not None:
        request.min_score = args.min_score
    if args.max_score is not None:
        request.max_score = args.max_score
    items, total = [], 0
    while len(items) < args.limit:
        page = call(args, stub.ListReviewItems, request)
        items += page.items
        total = page.total
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    for item in items[: args.limit]:
        if args.json:
            print_json(item_dict(item))
        else:
            print(
                f"{item.id:>7}  {_when(item.captured_at)}  {item.predicted:16} {item.score:.3f}  v{item.adapter_version:4} "
                f"{item.state:10} {','.join(item.reasons)}"
            )
    if not args.json:
        print(f"{min(len(items), args.limit)} of {total} {args.state} item(s) of task {args.task}")
    return 0


def _show(args, stub) -> int:
    from edgetl.api.v1 import review_pb2

    item = call(args, stub.GetReviewItem, review_pb2.GetReviewItemRequest(id=args.item_id, include_image=bool(args.save)))
    if args.save:
        args.save.write_bytes(item.image)
    if args.json:
        print_json({**item_dict(item), **({"saved": str(args.save)} if args.save else {})})
        return 0
    print(f"item {item.id} of task {item.task}: {item.state}; captured {_when(item.captured_at)} from {item.caller or '-'} ({', '.join(item.reasons)})")
    print(f"  predicted {item.predicted} ({item.score:.3f}, margin {item.margin:.3f}) by adapter {item.adapter_version}")
    print(f"  image {item.image_format} {item.width}x{item.height}, {item.image_bytes:,} bytes" + (f", saved to {args.save}" if args.save else ""))
    if item.resolved_by:
        print(f"  {item.state} by {item.resolved_by} {_when(item.resolved_at)}" + (f" as {item.resolved_class} (label {item.label_id})" if item.resolved_class else ""))
    return 0


def _resolve(args, stub) -> int:
    from edgetl.api.v1 import review_pb2

    action = getattr(review_pb2, args.action.upper())
    request = review_pb2.ResolveReviewItemsRequest(
        item_ids=args.item_ids, action=action, class_name=getattr(args, "class_name", "") or "", operator_id=args.operator, task=args.task
    )
    response = call(args, stub.ResolveReviewItems, request)
    for result in response.results:
        if args.json:
            print_json({"item_id": result.item_id, "ok": result.ok, "state": result.state, "label_id": result.label_id, "error": result.error or None})
        elif result.ok:
            print(f"item {result.item_id}: {result.state}" + (f" (label {result.label_id})" if result.label_id else ""))
        else:
            print(f"edgetl: error: item {result.item_id}: {result.error}", file=sys.stderr)
    failed = len(response.results) - response.resolved
    if failed:
        raise CliError(f"{failed} of {len(response.results)} item(s) were not resolved")
    return 0


def _summary(args, stub) -> int:
    from edgetl.api.v1 import review_pb2

    summary = call(args, stub.GetReviewSummary, review_pb2.GetReviewSummaryRequest(task=args.task))
    for t in summary.tasks:
        if args.json:
            print_json({"task": t.task, "pending": t.pending, "skipped": t.skipped, "resolved": t.resolved, "pending_by_reason": dict(t.pending_by_reason), "stored_bytes": t.stored_bytes})
        else:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(t.pending_by_reason.items())) or "-"
            print(f"{t.task:24} pending {t.pending:5}  skipped {t.skipped:5}  resolved {t.resolved:6}  ({reasons}; {t.stored_bytes / 2**20:.1f} MiB)")
    return 0


def _accuracy(args, stub) -> int:
    from edgetl.api.v1 import review_pb2

    live = call(args, stub.GetLiveAccuracy, review_pb2.GetLiveAccuracyRequest(task=args.task))
    for v in live.versions:
        row = {
            "task": live.task, "adapter_version": v.adapter_version, "active": v.active, "reviewed": v.reviewed, "correct": v.correct,
            "accuracy": round(v.accuracy, 6), "interval": [round(v.low, 6), round(v.high, 6)], "confidence": round(live.confidence, 3),
        }
        if args.json:
            print_json(row)
        else:
            active = " (active)" if v.active else ""
            print(f"v{v.adapter_version}{active}: {v.accuracy:.3f} on {v.reviewed} random samples, 95% interval {v.low:.3f}-{v.high:.3f}")
    if not live.versions and not args.json:
        print(f"task {live.task}: no randomly sampled item has been reviewed yet (edgetl review list --task {live.task} --reason random)")
    return 0


def _policy(args, stub) -> int:
    from edgetl.api.v1 import review_pb2

    changes = {name: getattr(args, name) for name in POLICY_FLAGS if name not in ("enabled", "disk_bytes") and getattr(args, name) is not None}
    if args.enabled is not None:
        changes["enabled"] = args.enabled == "true"
    if args.disk_mb is not None:
        if args.disk_mb < 0:
            raise CliError("--disk-mb must not be negative", EXIT_USAGE)
        changes["disk_bytes"] = int(args.disk_mb * 2**20)
    if changes or args.reset:
        policy = call(args, stub.SetCapturePolicy, review_pb2.SetCapturePolicyRequest(task=args.task, reset=args.reset, **changes))
    else:
        policy = call(args, stub.GetCapturePolicy, review_pb2.GetCapturePolicyRequest(task=args.task))
    as_dict = {name: getattr(policy, name) for name in POLICY_FLAGS}
    as_dict = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in as_dict.items()}
    if args.json:
        print_json({"task": policy.task, **as_dict, "customized": policy.customized, "updated_by": policy.updated_by or None})
    else:
        origin = f"set by {policy.updated_by} {_when(policy.updated_at)}" if policy.customized else "the server's defaults"
        print(f"task {policy.task} capture policy ({origin}):")
        for key, value in as_dict.items():
            print(f"  {key:17} {value}")
    return 0


def item_dict(item) -> dict:
    return {
        "id": item.id, "task": item.task, "captured_at": item.captured_at, "adapter_version": item.adapter_version, "predicted": item.predicted,
        "score": round(item.score, 6), "margin": round(item.margin, 6), "reasons": list(item.reasons), "caller": item.caller,
        "state": item.state, "resolved_by": item.resolved_by or None, "resolved_class": item.resolved_class or None,
        "label_id": item.label_id or None, "image": {"format": item.image_format, "width": item.width, "height": item.height, "bytes": item.image_bytes},
    }


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


_ACTIONS = {"list": _list, "show": _show, "summary": _summary, "accuracy": _accuracy, "policy": _policy, **{a: _resolve for a in RESOLVING}}
