"""Resolving review items: an operator's verdict becomes a label, or discards the image.

- accept: the predicted class becomes the item's label;
- relabel: the operator's class becomes its label, recorded with the
  prediction it corrects (relabelling to the predicted class is accepting);
- reject: the image is unusable (blurred, no part in view): it is discarded
  and no label is written;
- skip: out of the pending queue for now; it can be resolved later.

The label is written first (durably), then the item's state: a crash in
between leaves the item pending with its label already stored, and
resolving it again finds the label unchanged. Each item succeeds or fails on
its own, so one item another operator already rejected does not fail a
batch of fifty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from edgetl.adapt.labels import LabelStore
from edgetl.errors import EdgetlError, InvalidInput
from edgetl.review.store import ACCEPTED, EVICTED, LABELLED, PENDING, REJECTED, RELABELLED, SKIPPED, ReviewStore
from edgetl.tasks.store import Task

ACTIONS = ("accept", "relabel", "reject", "skip")
MAX_ITEMS = 500


@dataclass(frozen=True)
class Outcome:
    item_id: int
    ok: bool
    task: str = ""
    error: str = ""
    state: str = ""
    label_id: int = 0


def check_request(item_ids: list[int], action: str, class_name: str) -> None:
    """What is wrong with the request as a whole (before any item is touched)."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown review action {action!r}; use accept, relabel, reject or skip")
    if not item_ids:
        raise InvalidInput("no review items given (item_ids is empty)")
    if len(item_ids) > MAX_ITEMS:
        raise InvalidInput(f"{len(item_ids)} items in one call; the limit is {MAX_ITEMS}")
    if action == "relabel" and not class_name:
        raise InvalidInput("relabel needs class_name: the class the images really are")
    if action != "relabel" and class_name:
        raise InvalidInput(f"class_name is only for relabel, not {action}")


def resolve(
    reviews: ReviewStore, labels: LabelStore, get_task: Callable[[str], Task], item_ids: Iterable[int], action: str, class_name: str,
    operator: str, max_pixels: int, task: str = "",
) -> list[Outcome]:
    """Resolve each item (of `task`, when given); returns one outcome per item, in order."""
    outcomes = []
    for item_id in item_ids:
        try:
            outcomes.append(_resolve_one(reviews, labels, get_task, item_id, action, class_name, operator, max_pixels, task))
        except EdgetlError as exc:
            outcomes.append(Outcome(item_id, False, error=str(exc)))
    return outcomes


def _resolve_one(reviews, labels, get_task, item_id, action, class_name, operator, max_pixels, only_task) -> Outcome:
    item = reviews.get(item_id)
    if only_task and item.task != only_task:
        raise InvalidInput(f"item {item.id} belongs to task {item.task!r}, not {only_task!r}")
    if item.state in (REJECTED, EVICTED):
        why = "rejected" if item.state == REJECTED else "evicted by the disk cap"
        raise InvalidInput(f"item {item.id} was {why}; its image is gone")
    if action == "skip":
        if item.state != PENDING:
            raise InvalidInput(f"item {item.id} is {item.state}, not pending; there is nothing to skip")
        return _done(reviews.mark(item, SKIPPED, operator))
    if action == "reject":
        if item.state in LABELLED:
            raise InvalidInput(f"item {item.id} is already labelled {item.resolved_class!r}; relabel it instead of rejecting it")
        return _done(reviews.mark(item, REJECTED, operator))
    task = get_task(item.task)
    target = item.predicted if action == "accept" else class_name
    if target not in task.class_names:
        raise InvalidInput(f"task {task.name!r} has no class {target!r}; its classes are {list(task.class_names)}")
    corrects = item.predicted if target != item.predicted else ""
    added = labels.add(task.name, task.class_names, reviews.image(item), target, operator, corrects, max_pixels)
    state = ACCEPTED if target == item.predicted else RELABELLED
    return _done(reviews.mark(item, state, operator, target, added.label_id))


def _done(item) -> Outcome:
    return Outcome(item.id, True, item.task, state=item.state, label_id=item.label_id)
