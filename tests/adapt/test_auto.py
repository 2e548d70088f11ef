"""`--method auto`: when LoRA is tried, and which adapter serves."""

from __future__ import annotations

from edgetl.adapt.auto import MARGIN, choose, should_try_lora


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
    assert choose(0.80, 0.80 + MARGIN)[0] == "lora"
    method, why = choose(0.80, 0.80 + MARGIN / 2)
    assert method == "head" and "shares the backbone" in why
    assert choose(0.9, 0.85)[0] == "head"
