"""`--method auto`: a head first, then LoRA if the evidence and the time budget say it may pay.

The head trains in seconds to a minute and serves on the shared backbone
run (a guided head adds its bank search, about 9 ms on 2 cores; a LoRA
adapter runs a whole backbone of its own), so it is always trained first
and is the answer unless LoRA does clearly better:

1. the head's holdout model is scored on the validation split;
2. if that is already (near) perfect, or the split is too small to tell two
   models apart, the head is served;
3. otherwise a few LoRA training steps are timed on this machine; if the
   whole LoRA job would not fit the time budget (`time_budget_s`), the head
   is served. A LoRA job with a guided head that fits only without its
   refit trains without it (`plan_lora`; unless `refit_epochs` was given);
4. otherwise LoRA trains. When it answers through a guided head on its
   tuned maps (the default with a good class), it serves if its holdout
   accuracy is at least the head's (`choose`). Plain LoRA serves only if its holdout accuracy beats
   the head's on the same split by more than chance could: by one standard
   error of the head's validation accuracy, and at least `MARGIN`
   (`lora_margin`). LoRA's figure is the best of its epochs on that very
   split (trainer_lora keeps the best epoch), so it is the maximum of several
   noisy estimates on 20 to 60 images, while the head's is one fit's: with a
   one-point margin, auto served LoRA on one or two lucky validation images
   and lost test accuracy by it (BENCHMARKS.md, "Accuracy on defects nobody
   here tuned on").

Every step's numbers go into the job's summary, so the operator reads why.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

DEFAULT_BUDGET_S = 300.0
#: LoRA must beat the head by at least this much on the validation split to be served instead (and by one standard error: `lora_margin`).
MARGIN = 0.01
#: A head at or above this validation accuracy is kept without trying LoRA.
SATISFIED = 0.995
#: Below this many validation images, one image is worth more than MARGIN: the head is kept.
MIN_VAL = 6
#: Seconds for the things besides epochs: building the network, the linear probe, two exports.
LORA_FIXED_S = 25.0
#: A guided head on LoRA's tuned maps, in PyTorch forward passes of one image (~18 ms on a 2-core x86
#: VM): one view of one image through ONNX Runtime (~6 ms), and one view of one image in a fit (its
#: bank search and its share of the classifier, ~8 ms). With a refit, 4,320 views took ~63 s (BENCHMARKS.md, "Time").
GUIDED_VIEW_FORWARDS = 0.33
GUIDED_FIT_FORWARDS = 0.45


@dataclass(frozen=True)
class Decision:
    train_lora: bool
    reason: str


def should_try_lora(head_accuracy: float, n_val: int, estimate_s: float | None, budget_s: float) -> Decision:
    """Step 2 and 3: is LoRA worth its time here?"""
    if head_accuracy >= SATISFIED:
        return Decision(False, f"head validation accuracy {head_accuracy:.3f} leaves nothing to gain")
    if n_val < MIN_VAL:
        return Decision(False, f"only {n_val} validation images: too few to tell LoRA from the head; label more")
    if estimate_s is None:
        return Decision(False, "the backbone offers no LoRA targets")
    if estimate_s > budget_s:
        return Decision(False, f"LoRA would take about {estimate_s:.0f} s, over the time budget of {budget_s:.0f} s (time_budget_s)")
    return Decision(True, f"head validation accuracy {head_accuracy:.3f}; LoRA should take about {estimate_s:.0f} s (budget {budget_s:.0f} s)")


def lora_margin(head_accuracy: float, n_val: int) -> float:
    """How much LoRA must beat the head by on `n_val` validation images: one standard error of the
    head's accuracy there (binomial, sqrt(p (1 - p) / n)), and at least MARGIN."""
    p = min(max(head_accuracy, 0.0), 1.0)
    return max(MARGIN, math.sqrt(p * (1.0 - p) / max(n_val, 1)))


def choose(head_accuracy: float, lora_accuracy: float, n_val: int, lora_guided: bool = False) -> tuple[str, str]:
    """Step 4: (method, why), on `n_val` validation images.

    A LoRA adapter that answers through a guided head on its tuned maps
    (`lora_guided`) serves when it does at least as well as the head there:
    on the tuning generators it beat the guided head on test parts in 11
    of 12 cells (BENCHMARKS.md), so the split only has to show that this
    run did not go wrong, not prove a gain the tuning set already showed.
    """
    if lora_guided:
        if lora_accuracy >= head_accuracy:
            return "lora", f"LoRA with a guided head on its tuned maps {lora_accuracy:.3f}, at least the head's {head_accuracy:.3f} on {n_val} validation images"
        return "head", f"LoRA with a guided head on its tuned maps {lora_accuracy:.3f} is below the head's {head_accuracy:.3f} on {n_val} validation images; the head serves"
    margin = lora_margin(head_accuracy, n_val)
    if lora_accuracy >= head_accuracy + margin:
        return "lora", f"LoRA {lora_accuracy:.3f} beats the head {head_accuracy:.3f} by more than {margin:.3f} on {n_val} validation images"
    return "head", (
        f"LoRA {lora_accuracy:.3f} does not beat the head {head_accuracy:.3f} by {margin:.3f} (one standard error on {n_val} validation images, "
        "against LoRA's best epoch there); the head serves (it shares the backbone)"
    )


@dataclass(frozen=True)
class LoraTiming:
    """What LoRA's work took on this machine, per image: enough to price any LoRA job here.

    Two rates, because how much of a step is backward depends on the job's
    options (with `lora_min_stride` 8, a step is ~1.1-1.3 forward passes;
    with every layer adapted, ~2.3-2.5), while validation and a guided head's
    maps are forward work whatever the options. Checked once against the
    held-out jobs (2026-12-06): a guided LoRA job of 300 images estimated at
    149-195 s (three timings) against 158-198 s measured, 243 s against 212-253
    with every layer adapted.
    """

    build_s: float
    step_s: float  # one image's training step: forward, backward, update
    forward_s: float  # one image's forward pass without gradients (validation, maps)

    def job_seconds(self, n_train: int, n_all: int, epochs: int, refit: int, guided_views: int = 0) -> float:
        refit = refit if n_all > n_train else 0  # nothing to refit on without a validation split
        steps, forwards = lora_job_work(n_train, n_all, epochs, refit, guided_views)
        return LORA_FIXED_S + self.build_s + self.step_s * steps + self.forward_s * forwards


def time_lora_steps(backbone, num_classes: int, options: dict) -> LoraTiming | None:
    """Time a few real training steps and forward passes here (None if the backbone has no LoRA targets)."""
    import numpy as np
    import torch

    from edgetl.adapt.trainer_lora import _epoch, _evaluate, _loss, _optimizer, build_tasknet

    if not backbone.spec.lora_targets:
        return None
    started = time.monotonic()
    net, _ = build_tasknet(backbone, num_classes, options)
    build_s = time.monotonic() - started
    batch = int(options["batch_size"])
    h, w = backbone.spec.input_size
    x = torch.randn(batch * 2, 3, h, w)
    y = torch.from_numpy(np.arange(batch * 2) % num_classes).long()
    probe_options = {**options}
    optimizer, loss_fn = _optimizer(net, probe_options), _loss(y.numpy(), num_classes)
    generator = torch.Generator().manual_seed(0)
    _epoch(net, optimizer, loss_fn, x[:batch], y[:batch], probe_options, generator, False, lambda: False)  # warm-up
    started = time.monotonic()
    _epoch(net, optimizer, loss_fn, x, y, probe_options, generator, False, lambda: False)
    step_s = (time.monotonic() - started) / len(x)
    started = time.monotonic()
    _evaluate(net, x, y, loss_fn)
    return LoraTiming(build_s, step_s, (time.monotonic() - started) / len(x))


@dataclass(frozen=True)
class LoraPlan:
    estimate_s: float
    refit_epochs: int
    note: str = ""


def plan_lora(timing: LoraTiming, options: dict, refit_given: bool, n_train: int, n_all: int, guided_views: int, budget_s: float) -> LoraPlan:
    """LoRA's estimated seconds, and the refit it will run: its option, unless that is over the budget
    and a guided LoRA without the refit is not (`--refit-epochs 0`: 1.3 points lower held out, about
    60 s faster for 300 images, measured with every layer adapted; BENCHMARKS.md), and the caller did not ask for a refit itself."""
    epochs, refit = int(options["epochs"]), int(options["refit_epochs"])
    estimate = timing.job_seconds(n_train, n_all, epochs, refit, guided_views)
    if estimate > budget_s and guided_views and refit and not refit_given:
        faster = timing.job_seconds(n_train, n_all, epochs, 0, guided_views)
        if faster <= budget_s:
            return LoraPlan(faster, 0, f"without the refit: about {estimate:.0f} s with it, over the budget")
    return LoraPlan(estimate, refit)


def lora_job_work(n_train: int, n_all: int, epochs: int, refit: int, guided_views: int = 0) -> tuple[float, float]:
    """A LoRA job's work in one image's training steps and in one image's forward passes:
    its epochs and refit; each epoch's validation, and a guided head's views."""
    steps = n_train * epochs + n_all * refit
    # A guided head on the tuned maps: each view of each image through the exported model (once
    # for both heads without a refit; with one, the holdout model's training split, then the
    # served model's every image), and the two fits (holdout: the training split; served: all).
    views = guided_views * (n_all + (n_train if refit else 0))
    forwards = (n_all - n_train) * epochs + views * GUIDED_VIEW_FORWARDS + guided_views * (n_train + n_all) * GUIDED_FIT_FORWARDS
    return steps, forwards
