"""The backbone contract: a declarative spec plus a function that builds the torch module.

A spec is plain data, readable without importing torch, so the serving
process can identify, preprocess for and serve a backbone from its ONNX
export alone. Only `Backbone.build` touches torch, and only the export and
training processes call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from edgetl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

#: Name of the pooled feature vector every backbone exports, shape [N, D].
POOLED = "pooled"
#: Name of the optional classifier output, shape [N, num_classes].
LOGITS = "logits"


@dataclass(frozen=True)
class BackboneSpec:
    """How to feed a backbone and what it gives back: data, not code.

    Attributes:
        name: registry name, lowercase (``efficientnet_lite0``).
        version: bump when weights or the build change; part of the export key.
        input_size: (height, width) the network is fed.
        color_order: channel order the network expects, "RGB" or "BGR".
        mean, std: per-channel normalisation applied to pixels scaled to [0, 1].
        feature_maps: names of the intermediate feature maps the export adds
            as outputs (at least two; later heads and anomaly detectors use them).
        lora_targets: regular expressions over module names that LoRA may adapt.
        class_names: names of the classifier's classes, or () for no classifier.
            A backbone with class names exports `logits` and gets a built-in task.
        builtin_task: the name of that built-in task (e.g. "imagenet").
        description: one line for `edgetl backbones`.
    """

    name: str
    version: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_maps: tuple[str, ...]
    color_order: Literal["RGB", "BGR"] = "RGB"
    lora_targets: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    builtin_task: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not NAME_RE.match(self.name):
            problems.append(f"name {self.name!r} must match {NAME_RE.pattern}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            problems.append(f"input_size {self.input_size} must be (height, width), each >= 8")
        if self.color_order not in ("RGB", "BGR"):
            problems.append(f"color_order {self.color_order!r} must be 'RGB' or 'BGR'")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std need three values each, std > 0")
        if len(self.feature_maps) < 2 or len(set(self.feature_maps)) != len(self.feature_maps):
            problems.append("feature_maps needs at least two distinct names")
        if {POOLED, LOGITS} & set(self.feature_maps):
            problems.append(f"feature_maps may not be called {POOLED!r} or {LOGITS!r}")
        if bool(self.class_names) != bool(self.builtin_task):
            problems.append("class_names and builtin_task go together")
        if problems:
            raise ConfigError(f"backbone spec {self.name!r}: " + "; ".join(problems))

    @property
    def output_names(self) -> tuple[str, ...]:
        """The ONNX outputs, in order: pooled, the feature maps, then logits if any."""
        return (POOLED, *self.feature_maps, *((LOGITS,) if self.class_names else ()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "input_size": list(self.input_size),
            "color_order": self.color_order,
            "mean": list(self.mean),
            "std": list(self.std),
            "feature_maps": list(self.feature_maps),
            "lora_targets": list(self.lora_targets),
            "num_classes": len(self.class_names),
            "builtin_task": self.builtin_task,
        }


@dataclass(frozen=True)
class Backbone:
    """A backbone as a plugin provides it.

    Attributes:
        spec: the declarative description above.
        build: returns a torch module in eval mode whose ``forward(images)``
            takes a float tensor [N, 3, H, W] (already normalised) and returns
            a dict with a tensor for every name in ``spec.output_names``:
            ``pooled`` [N, D], each feature map [N, C, h, w], and ``logits``
            [N, K] when the spec has class names. Called only in the export
            and training processes, never by the server.
        weights: the file holding the weights, hashed into the export key so a
            new file means a new export. None for random weights (tests).
        plugin: the registering plugin's name; filled in by the registry.
    """

    spec: BackboneSpec
    build: Callable[[], "torch.nn.Module"] = field(compare=False)
    weights: Path | None = None
    plugin: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (shipped as package data)."""
    text = resources.files("edgetl").joinpath("data/imagenet_classes.txt").read_text()
    return tuple(line for line in text.splitlines() if line)
