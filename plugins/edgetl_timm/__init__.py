"""A generic backbone plugin: any timm model by name, weights from a local file.

Configured in the settings file; each entry becomes one backbone::

    [[plugins.timm.backbones]]
    name = "resnet18-line4"          # the edgetl backbone name
    model = "resnet18"                # the timm model name
    weights = "/models/resnet18.safetensors"   # .safetensors, .pth or .pt; or "random"
    feature_maps = { stage3 = 3, stage4 = 4 }  # name -> forward_intermediates index
    input_size = [224, 224]
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    version = "1"

Every key but ``name``, ``model`` and ``weights`` is optional. The spec is
built from this table alone, without importing timm, so the server can serve
a cached export without torch. ``weights = "random"`` builds random weights
from a fixed seed (for tests and plugin development).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgetl.backbones import Backbone, BackboneSpec
from edgetl.errors import ConfigError
from edgetl.plugin import hookimpl

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KNOWN_KEYS = {"name", "model", "weights", "feature_maps", "input_size", "mean", "std", "version", "lora_targets", "description"}
RANDOM = "random"


def _backbone(entry: Mapping[str, Any]) -> Backbone:
    unknown = set(entry) - KNOWN_KEYS
    missing = {"name", "model", "weights"} - set(entry)
    if unknown or missing:
        raise ConfigError(
            f"[plugins.timm] backbone {entry.get('name', '?')!r}: "
            + "; ".join(
                [f"missing {sorted(missing)}"] * bool(missing) + [f"unknown {sorted(unknown)} (known: {sorted(KNOWN_KEYS)})"] * bool(unknown)
            )
        )
    model_name = str(entry["model"])
    weights = None if entry["weights"] == RANDOM else Path(entry["weights"]).expanduser()
    feature_maps = dict(entry.get("feature_maps", {"penultimate": -2, "last": -1}))
    spec = BackboneSpec(
        name=str(entry["name"]),
        version=str(entry.get("version", "1")),
        input_size=tuple(entry.get("input_size", (224, 224))),
        mean=tuple(entry.get("mean", IMAGENET_MEAN)),
        std=tuple(entry.get("std", IMAGENET_STD)),
        feature_maps=tuple(feature_maps),
        lora_targets=tuple(entry.get("lora_targets", ())),
        description=str(entry.get("description", f"timm {model_name}, weights {entry['weights']}")),
    )

    def build():
        import timm
        import torch

        from edgetl.backbones.timm_features import TimmFeatures, load_state_dict_file

        torch.manual_seed(0)  # "random" weights are the same in every process
        model = timm.create_model(model_name, pretrained=False)
        if weights is not None:
            if not weights.is_file():
                raise ConfigError(f"backbone {spec.name!r}: weights file {weights} does not exist")
            result = model.load_state_dict(load_state_dict_file(weights), strict=False)
            if result.missing_keys:
                raise ConfigError(
                    f"backbone {spec.name!r}: {weights} lacks {len(result.missing_keys)} tensors of "
                    f"{model_name} (first: {result.missing_keys[0]}); is it the right model?"
                )
        return TimmFeatures(model, feature_maps, with_logits=False).eval()

    return Backbone(spec=spec, build=build, weights=weights)


@hookimpl
def edgetl_backbones(config: Mapping[str, Any]) -> list[Backbone]:
    return [_backbone(entry) for entry in config.get("backbones", [])]
