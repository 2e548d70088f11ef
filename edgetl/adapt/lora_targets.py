"""Which of a backbone's layers LoRA adapts: its plugin's patterns, at or past a stride.

Torch-free, so the server can refuse a bad ``lora_min_stride`` when a job is
asked for rather than minutes into it. The strides come from the training
process (``trainer_lora._probe``: one zero image through the backbone).

Why a stride floor: autograd stops at the first adapted layer, so leaving the
high-resolution layers frozen takes their backward pass out of every step.
On Lite0 at 224 px, LoRA from stride 8 on trains a step in about half the
time it takes with every 1x1 convolution adapted (20-27 ms an image against
42-53 on 2 cores; benchmarks/lora_step.py --min-strides 1 8),
and keeps 97 % of the LoRA weights (the early layers are narrow);
BENCHMARKS.md has its accuracy held out.
"""

from __future__ import annotations

import re

from edgetl.backbones.spec import BackboneSpec
from edgetl.errors import InvalidInput

#: lora_min_stride's choices: LoRA adapts the targeted layers whose output is this much coarser than the input, or more (1: all).
MIN_STRIDES = (1, 2, 4, 8, 16, 32)


def check_lora_min_stride(value) -> int:
    """`value` as a stride LoRA may start at, or InvalidInput naming the choices."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in MIN_STRIDES:
        raise InvalidInput(f"LoRA option lora_min_stride must be one of {', '.join(map(str, MIN_STRIDES))}, got {value!r}")
    return value


def lora_layers(spec: BackboneSpec, strides: dict[str, float], min_stride: int) -> list[str]:
    """The module names, of those in `strides` ({name: output stride}, in forward order), that LoRA adapts.

    A layer is adapted when one of the plugin's `lora_targets` patterns
    matches its name (as peft matches them: the whole name, or its tail after
    a dot) and its output stride is at least `min_stride`; layers with flat
    outputs (linear layers on pooled features, transformer tokens) count as
    coarsest.
    """
    if not spec.lora_targets:
        raise InvalidInput(f"backbone {spec.name!r} declares no LoRA targets; use --method head")
    check_lora_min_stride(min_stride)
    pattern = re.compile(r"(?:.*\.)?(?:" + "|".join(spec.lora_targets) + r")")
    targeted = [name for name in strides if pattern.fullmatch(name)]
    chosen = [name for name in targeted if strides[name] >= min_stride]
    if not chosen:
        found = sorted({int(strides[n]) for n in targeted if strides[n] != float("inf")})
        raise InvalidInput(
            f"backbone {spec.name!r} has no LoRA target at stride {min_stride} or coarser ({len(targeted)} targets, at strides {found}); lower lora_min_stride"
        )
    return chosen
