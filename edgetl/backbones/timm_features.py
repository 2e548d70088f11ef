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
