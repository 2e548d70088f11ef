"""Which layers LoRA adapts (edgetl.adapt.lora_targets): the plugin's patterns, from a stride on; bad floors refused."""

from __future__ import annotations

import pytest

from edgetl.adapt.lora_targets import MIN_STRIDES, check_lora_min_stride, lora_layers
from edgetl.backbones.spec import BackboneSpec
from edgetl.errors import InvalidInput



def spec(name: str, *lora_targets: str) -> BackboneSpec:
    return BackboneSpec(name=name, version="1", input_size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3, feature_maps=("s8", "s16"), lora_targets=lora_targets)


SPEC = spec("cnn", r"blocks\.\d+\.\d+\.conv_pwl?", r"conv_head")
# Output strides in forward order, as trainer_lora._probe records them.
STRIDES = {
    "conv_stem": 2.0, "blocks.0.0.conv_dw": 2.0, "blocks.0.0.conv_pw": 2.0,
    "blocks.1.0.conv_pw": 2.0, "blocks.1.0.conv_dw": 4.0, "blocks.1.0.conv_pwl": 4.0,
    "blocks.2.0.conv_pw": 4.0, "blocks.2.0.conv_dw": 8.0, "blocks.2.0.conv_pwl": 8.0,
    "conv_head": 32.0, "classifier": float("inf"),
}


def test_the_floor_keeps_the_targets_at_or_past_it_in_forward_order():
    assert lora_layers(SPEC, STRIDES, 1) == ["blocks.0.0.conv_pw", "blocks.1.0.conv_pw", "blocks.1.0.conv_pwl", "blocks.2.0.conv_pw", "blocks.2.0.conv_pwl", "conv_head"]
    assert lora_layers(SPEC, STRIDES, 4) == ["blocks.1.0.conv_pwl", "blocks.2.0.conv_pw", "blocks.2.0.conv_pwl", "conv_head"]
    assert lora_layers(SPEC, STRIDES, 8) == ["blocks.2.0.conv_pwl", "conv_head"]
    # Depthwise convolutions, the stem and the classifier match no pattern at any floor.
    assert not {"conv_stem", "blocks.2.0.conv_dw", "classifier"} & set(lora_layers(SPEC, STRIDES, 1))


def test_patterns_match_whole_names_or_their_tail_as_peft_does():
    wrapped = {f"model.{name}": stride for name, stride in STRIDES.items()}
    assert lora_layers(SPEC, wrapped, 8) == ["model.blocks.2.0.conv_pwl", "model.conv_head"]
    assert lora_layers(SPEC, {"my_conv_head": 32.0, "conv_head": 32.0}, 1) == ["conv_head"]


def test_flat_outputs_count_as_coarsest():
    assert lora_layers(spec("vit", r"blocks\.\d+\.attn\.qkv"), {"blocks.0.attn.qkv": float("inf"), "blocks.1.attn.qkv": float("inf")}, 32) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]


@pytest.mark.parametrize("value", [0, 3, 64, "8", 8.0, True, None])
def test_a_floor_that_is_not_a_power_of_two_up_to_32_is_refused_with_the_choices(value):
    with pytest.raises(InvalidInput, match=r"lora_min_stride must be one of 1, 2, 4, 8, 16, 32, got"):
        check_lora_min_stride(value)
    assert [check_lora_min_stride(v) for v in MIN_STRIDES] == list(MIN_STRIDES)


def test_no_target_past_the_floor_and_no_targets_at_all_say_what_to_do():
    early = {"blocks.0.0.conv_pw": 2.0, "blocks.1.0.conv_pwl": 4.0}
    with pytest.raises(InvalidInput, match=r"no LoRA target at stride 8 or coarser \(2 targets, at strides \[2, 4\]\); lower lora_min_stride"):
        lora_layers(SPEC, early, 8)
    with pytest.raises(InvalidInput, match="declares no LoRA targets; use --method head"):
        lora_layers(spec("plain"), STRIDES, 1)
