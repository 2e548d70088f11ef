"""Backbones: the contract plugins fulfil, the registry, and ONNX export."""

from edgetl.backbones.spec import Backbone, BackboneSpec, imagenet_class_names

__all__ = ["Backbone", "BackboneSpec", "imagenet_class_names"]
