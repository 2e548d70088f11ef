"""The model every peer server serves: edgetl's export, edgetl's preprocessing.

Standalone on purpose (numpy, OpenCV, ONNX Runtime only): it is imported by
KServe's, MLServer's and PyTriton's processes from their own throwaway virtual
environments, where edgetl is not installed. What it does mirrors
`edgetl.runtime.preprocess` and the built-in `imagenet` task exactly, so every
server does the same work per image:

- decode with OpenCV (`cv2.imdecode`, BGR), or take raw RGB pixels;
- resize to the input size (INTER_AREA when shrinking), then plane by plane
  into CHW float32 with the backbone's mean and std;
- one ONNX Runtime run of the batch, fetching only `logits`;
- softmax; the label is the best class.

The tensors follow edgetl's KServe v2 contract, so one client drives every
server: input ``images`` (BYTES [N], encoded files) or ``pixels`` (UINT8
[N, H, W, 3], RGB); outputs ``labels`` (BYTES [N]) and ``scores`` (FP32
[N, classes]).

Configured by environment variables the benchmark sets:
EDGETL_PEER_MODEL (the .onnx), EDGETL_PEER_SPEC (a JSON file: input_size,
color_order, mean, std, class_names), EDGETL_PEER_THREADS (ONNX Runtime
intra-op threads, matched to the CPUs the server is given).
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import onnxruntime as ort

cv2.setNumThreads(1)


class PeerModel:
    def __init__(self) -> None:
        with open(os.environ["EDGETL_PEER_SPEC"]) as f:
            spec = json.load(f)
        self.height, self.width = spec["input_size"]
        self.class_names = [name.encode() for name in spec["class_names"]]
        self.source = (2, 1, 0) if spec["color_order"] == "RGB" else (0, 1, 2)
        std = np.asarray(spec["std"], np.float32)
        self.scale = [np.float32(v) for v in 1.0 / (255.0 * std)]
        self.offset = [
            np.float32(v) for v in -np.asarray(spec["mean"], np.float32) / std
        ]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(os.environ.get("EDGETL_PEER_THREADS", "0"))
        self.session = ort.InferenceSession(
            os.environ["EDGETL_PEER_MODEL"], options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.predict_pixels(
            np.zeros((1, self.height, self.width, 3), np.uint8)
        )  # warm up

    def _tensor(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if (h, w) != (self.height, self.width):
            shrinking = h > self.height or w > self.width
            bgr = cv2.resize(
                bgr,
                (self.width, self.height),
                interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
            )
        out = np.empty((3, self.height, self.width), np.float32)
        for plane, channel in enumerate(self.source):
            np.multiply(
                bgr[:, :, channel], self.scale[plane], out=out[plane], dtype=np.float32
            )
            out[plane] += self.offset[plane]
        return out

    def _run(self, tensors: list[np.ndarray]) -> tuple[list[bytes], np.ndarray]:
        logits = self.session.run(["logits"], {self.input_name: np.stack(tensors)})[0]
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores = (z / z.sum(axis=1, keepdims=True)).astype(np.float32)
        return [self.class_names[i] for i in scores.argmax(axis=1)], scores

    def predict_encoded(self, files: list[bytes]) -> tuple[list[bytes], np.ndarray]:
        """Encoded image files -> (labels, scores [N, classes])."""
        tensors = []
        for data in files:
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError("image could not be decoded")
            tensors.append(self._tensor(bgr))
        return self._run(tensors)

    def predict_pixels(self, pixels: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """RGB uint8 [N, H, W, 3] -> (labels, scores [N, classes])."""
        return self._run([self._tensor(image[:, :, ::-1]) for image in pixels])


def bytes_elements(raw: bytes) -> list[bytes]:
    """Split a KServe v2 raw BYTES tensor (uint32 LE length, then the bytes, per element)."""
    items, offset = [], 0
    while offset < len(raw):
        size = int.from_bytes(raw[offset : offset + 4], "little")
        items.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return items
