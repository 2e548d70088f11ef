"""edgetl: on-device transfer learning for visual inspection.

A gRPC server that classifies camera images with a pretrained backbone run by
ONNX Runtime, and adapts it to a plant's defects from operator labels.
"""

__version__ = "0.1.0"
