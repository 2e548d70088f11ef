"""The evaluation gate: does a newly trained adapter replace the active one?

A pure function of the training job's evidence (edgetl.adapt.worker's
result), so every rule is tested without a server:

- the new adapter's holdout model must be no worse than the active
  adapter's holdout model on the same validation split (both were trained
  without it), within `tolerance`;
- a task that gained classes also holds it to the active adapter's accuracy
  on the classes both know;
- an INT8 adapter must also be no worse than the same adapter in FP32 on
  that split: quantization must not cost accuracy the line relies on.
  This one is judged image by image (a paired test), not on the two
  accuracies alone: the INT8 and FP32 heads are two fits that disagree on
  a few borderline images either way, and on a validation split of ~20
  images a strict comparison of accuracies refused INT8 in 6 of 16 cells
  whose test accuracy was on average no lower (+0.5 points; BENCHMARKS.md,
  "INT8 on a CPU box"). INT8 is kept
  as a candidate when it loses accuracy beyond `tolerance` *and* the images
  it gets wrong that FP32 got right outnumber the reverse beyond chance
  (one-sided exact sign test, p < INT8_ALPHA).

`force` activates whatever the evidence says (the operator's call); the
message still states the evidence.
"""

from __future__ import annotations


INT8_ALPHA = 0.10  # one-sided: a loss this unlikely to be chance keeps an INT8 adapter out


def gate(done: dict, force: bool, tolerance: float) -> tuple[bool, str]:
    """(activate?, the one-line reason an operator reads) for a finished job's result `done`."""
    activate, why = _against_active(done, force, tolerance)
    fp32 = done.get("fp32_metrics")
    if fp32 is None:
        return activate, why
    new, float_accuracy = done["metrics"]["accuracy"], fp32["accuracy"]
    cost = f"INT8 validation accuracy {new:.3f} against {float_accuracy:.3f} for the same adapter in FP32"
    paired = done.get("int8_paired")
    if paired is not None:
        cost += f" ({paired['lost']} image(s) lost, {paired['gained']} gained; p = {paired['p']:.2f})"
    worse = new < float_accuracy - tolerance and (paired is None or paired["p"] < INT8_ALPHA)
    if activate and not force and worse:
        return False, f"kept as candidate: quantization costs accuracy ({cost}); train with --precision fp32, or use --force to activate anyway"
    if activate and new < float_accuracy - tolerance:
        cost += ", within chance"
    return activate, f"{why}; {cost}"


def paired_comparison(truth, fp32_predicted, int8_predicted) -> dict:
    """How INT8 and FP32 differ on the same images: images lost and gained, and the sign test's p.

    `p` is the chance of losing at least `lost` of the `lost + gained`
    images on which exactly one of the two is right, if neither were better.
    """
    import math

    truth, a, b = (list(map(int, v)) for v in (truth, fp32_predicted, int8_predicted))
    lost = sum(1 for t, x, y in zip(truth, a, b) if x == t and y != t)
    gained = sum(1 for t, x, y in zip(truth, a, b) if x != t and y == t)
    n = lost + gained
    p = sum(math.comb(n, k) for k in range(lost, n + 1)) / 2**n if n else 1.0
    return {"lost": lost, "gained": gained, "p": p}


def _against_active(done: dict, force: bool, tolerance: float) -> tuple[bool, str]:
    new = done["metrics"]["accuracy"]
    active = done.get("active_metrics")
    if force:
        return True, "activated: --force"
    if active is None:
        return True, f"activated: first adapter (validation accuracy {new:.3f}, trained without the validation split; the served model learned from every label)"
    old = active["accuracy"]
    known = done.get("known_classes")
    if known:
        # The task gained classes since the active adapter was trained: it
        # scores 0 on their images, so also hold the new adapter to the
        # active one's accuracy on the classes both know.
        added = ", ".join(repr(c) for c in known["new_classes"])
        on_known = f"on the {known['n']} validation images of the classes both know: {known['accuracy']:.3f} vs active {known['active_accuracy']:.3f}"
        if known["accuracy"] < known["active_accuracy"] - tolerance:
            return False, f"kept as candidate: worse on the classes the active adapter knows ({on_known}) (use --force to activate anyway)"
        if new >= old - tolerance:
            return True, f"activated: validation accuracy {new:.3f} >= active {old:.3f} on the same split, which the active adapter cannot get right for new classes {added}; {on_known}"
    if new >= old - tolerance:
        return True, f"activated: validation accuracy {new:.3f} >= active {old:.3f} on the same split (both trained without it); the served model then learned from every label"
    return False, f"kept as candidate: validation accuracy {new:.3f} < active {old:.3f} on the same split (use --force to activate anyway)"
