"""`--method auto`: when LoRA is tried, and which adapter serves."""

from __future__ import annotations

import pytest

from edgetl.adapt.auto import GUIDED_FIT_FORWARDS, GUIDED_VIEW_FORWARDS, MARGIN, LoraTiming, choose, lora_job_work, lora_margin, should_try_lora


def test_lora_is_tried_only_when_it_may_pay_and_fits_the_budget():
    assert not should_try_lora(1.0, 40, 60, 300).train_lora  # nothing to gain
    small = should_try_lora(0.7, 4, 60, 300)
    assert not small.train_lora and "too few" in small.reason
    slow = should_try_lora(0.7, 40, 900, 300)
    assert not slow.train_lora and "900 s, over the time budget of 300 s" in slow.reason
    assert not should_try_lora(0.7, 40, None, 300).train_lora  # a backbone without LoRA targets
    go = should_try_lora(0.7, 40, 120, 300)
    assert go.train_lora and "about 120 s" in go.reason


def test_the_head_serves_unless_lora_is_clearly_better():
    # On many validation images the standard error is small: the one-point floor decides.
    assert lora_margin(0.80, 100_000) == MARGIN
    assert choose(0.80, 0.80 + MARGIN, 100_000)[0] == "lora"
    method, why = choose(0.80, 0.80 + MARGIN / 2, 100_000)
    assert method == "head" and "shares the backbone" in why
    assert choose(0.9, 0.85, 60)[0] == "head"


def test_lora_must_beat_the_head_by_more_than_a_lucky_image_or_two():
    # 21 validation images, the head right on 18 (0.857): one standard error is 0.076, 1.6 images.
    # LoRA's figure is its best epoch on these same images, so one more right is chance.
    assert lora_margin(18 / 21, 21) == pytest.approx((18 / 21 * 3 / 21 / 21) ** 0.5)
    assert choose(18 / 21, 19 / 21, 21)[0] == "head"
    method, why = choose(18 / 21, 20 / 21, 21)
    assert method == "lora" and "21 validation images" in why
    # The margin shrinks as the split grows: 0.045 on 60 images, 0.076 on 21.
    assert lora_margin(0.857, 60) == pytest.approx(0.0452, abs=1e-3) and lora_margin(0.857, 21) == pytest.approx(0.0764, abs=1e-3)
    assert choose(0.5, 0.55, 20)[0] == "head"  # a coin-flip head: 0.112 needed


def test_a_guided_head_on_the_tuned_maps_is_counted_in_the_lora_estimate():
    steps, forwards = lora_job_work(240, 300, epochs=8, refit=2)
    assert (steps, forwards) == (240 * 8 + 300 * 2, 60 * 8)  # training and refit steps; each epoch's validation
    # Two fits (holdout on the training split, served on all), each image in every view; with a
    # refit, the maps of two models (the training split's, then every image's), else of one.
    fits = 8 * 540 * GUIDED_FIT_FORWARDS
    assert lora_job_work(240, 300, epochs=8, refit=2, guided_views=8) == pytest.approx((steps, forwards + 8 * 540 * GUIDED_VIEW_FORWARDS + fits))
    assert lora_job_work(240, 300, epochs=8, refit=0, guided_views=8) == pytest.approx((steps - 600, forwards + 8 * 300 * GUIDED_VIEW_FORWARDS + fits))
    # Seconds: steps at the step's rate, forward work at the forward pass's.
    timing = LoraTiming(build_s=2.0, step_s=0.02, forward_s=0.018)
    assert timing.job_seconds(240, 300, 8, 2) == pytest.approx(25.0 + 2.0 + 0.02 * steps + 0.018 * forwards)


def test_a_guided_lora_serves_when_it_does_at_least_as_well_as_the_head():
    assert choose(0.90, 0.90, 60, lora_guided=True)[0] == "lora"  # a tie: the tuning set's evidence decides
    assert choose(0.90, 0.91, 60, lora_guided=True)[0] == "lora"
    method, why = choose(0.90, 0.88, 60, lora_guided=True)
    assert method == "head" and "below the head's 0.900" in why
    assert choose(0.90, 0.91, 60)[0] == "head"  # plain LoRA still needs a standard error (0.039 here)


def test_a_guided_lora_over_the_budget_drops_its_refit_when_that_fits():
    from edgetl.adapt.auto import plan_lora
    from edgetl.adapt.trainer_lora import DEFAULTS

    timing = LoraTiming(build_s=2.0, step_s=0.02, forward_s=0.018)  # a 2-core VM's (BENCHMARKS.md)
    with_refit = timing.job_seconds(240, 300, 8, 2, 8)
    without = timing.job_seconds(240, 300, 8, 0, 8)
    assert without < with_refit
    # Inside the budget: the refit stays.
    plan = plan_lora(timing, DEFAULTS, False, 240, 300, 8, with_refit + 1)
    assert plan.refit_epochs == 2 and plan.estimate_s == with_refit and not plan.note
    # Over it with the refit, inside without: no refit, and the summary says why.
    faster = plan_lora(timing, DEFAULTS, False, 240, 300, 8, (with_refit + without) / 2)
    assert faster.refit_epochs == 0 and faster.estimate_s == without and f"about {with_refit:.0f} s with it" in faster.note
    # Not when the caller asked for the refit, nor for plain LoRA (its own classifier needs the refit), nor when neither fits.
    assert plan_lora(timing, DEFAULTS, True, 240, 300, 8, (with_refit + without) / 2).refit_epochs == 2
    assert plan_lora(timing, DEFAULTS, False, 240, 300, 0, (with_refit + without) / 2).refit_epochs == 2
    assert plan_lora(timing, DEFAULTS, False, 240, 300, 8, without - 1).estimate_s == with_refit
    # Without a validation split there is nothing to refit on.
    assert timing.job_seconds(300, 300, 8, 2, 8) == timing.job_seconds(300, 300, 8, 0, 8)
