"""KServe v2 tensors <-> images and predictions: the encoding rules in one place.

Inputs (one per request, either):

- ``images``: BYTES, shape [N] (or [N, 1]): encoded JPEG, PNG or BMP files. In
  ``raw_input_contents`` each element is a 4-byte little-endian length and
  then its bytes; in ``contents.bytes_contents`` one element per entry.
- ``pixels``: UINT8, shape [N, H, W, 3] (or [H, W, 3]), RGB. Raw contents are
  the bytes in C order; ``contents.uint_contents`` one value per entry.

Outputs, in ``raw_output_contents`` (the order of ``outputs``):

- ``labels``: BYTES [N], the best class of each image;
- ``scores``: FP32 [N, classes], little-endian, in the task's class order
  (also sent as the response parameter ``class_names``, a JSON list).

An anomaly task (README "Anomaly detection") also has, sent by default:

- ``anomaly_score``: FP32 [N], how unlike the good parts each image is;
- ``anomaly_threshold``: FP32 [N], the adapter's threshold (the same for all);
- ``anomalous``: BOOL [N] (one byte each), score above threshold;

and, only when named in ``outputs``, ``anomaly_map``: FP32 [N, h, w], the
patch scores on the backbone's finest grid (edgetl.v1 also offers a PNG).

Request parameter ``flag_for_review`` (bool, or the string "true"): keep
every image of the request for an operator to review (reason "flagged").
"""

from __future__ import annotations

import struct

import numpy as np

from edgetl.errors import InvalidInput, TooLarge
from edgetl.runtime.preprocess import EncodedImage, ImageInput, RawPixels

IMAGES, PIXELS = "images", "pixels"
LABELS, SCORES = "labels", "scores"
ANOMALY_SCORE, ANOMALY_THRESHOLD, ANOMALOUS, ANOMALY_MAP = "anomaly_score", "anomaly_threshold", "anomalous", "anomaly_map"
INPUT_TYPES = {IMAGES: "BYTES", PIXELS: "UINT8"}
OUTPUT_NAMES = (LABELS, SCORES)
#: An anomaly task's outputs: sent unless the request names others; the map only when named (it is large).
ANOMALY_OUTPUTS = (ANOMALY_SCORE, ANOMALY_THRESHOLD, ANOMALOUS)
ANOMALY_ONLY_ON_REQUEST = (ANOMALY_MAP,)


def decode_bytes_elements(raw: bytes) -> list[bytes]:
    """Split a raw BYTES tensor: each element is a uint32 LE length, then that many bytes."""
    items, offset, view = [], 0, memoryview(raw)
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"BYTES tensor ends inside an element's 4-byte length prefix (at byte {offset} of {len(raw)})")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput(
                f"BYTES element {len(items)} says it has {size} bytes but only {len(raw) - offset} remain; "
                "each element needs a 4-byte little-endian length prefix"
            )
        items.append(bytes(view[offset : offset + size]))
        offset += size
    return items


def encode_bytes_elements(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def images_from_request(request, max_images: int) -> list[ImageInput]:
    """The images of a ModelInferRequest, checked; errors name the tensor and what is wrong."""
    if len(request.inputs) != 1:
        got = ", ".join(i.name for i in request.inputs) or "none"
        raise InvalidInput(f"send exactly one input tensor, {IMAGES!r} (BYTES) or {PIXELS!r} (UINT8 [N,H,W,3]); got: {got}")
    if request.raw_input_contents and len(request.raw_input_contents) != len(request.inputs):
        raise InvalidInput(f"{len(request.raw_input_contents)} raw_input_contents for {len(request.inputs)} inputs")
    tensor = request.inputs[0]
    if tensor.name not in INPUT_TYPES:
        raise InvalidInput(f"unknown input {tensor.name!r}; inputs are {IMAGES!r} (BYTES) and {PIXELS!r} (UINT8 [N,H,W,3])")
    if tensor.datatype != INPUT_TYPES[tensor.name]:
        raise InvalidInput(f"input {tensor.name!r} must be {INPUT_TYPES[tensor.name]}, not {tensor.datatype or 'unset'}")
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input {tensor.name!r} has a negative dimension in its shape {list(shape)}")
    raw = request.raw_input_contents[0] if request.raw_input_contents else None
    images = _encoded(tensor, shape, raw) if tensor.name == IMAGES else _pixels(tensor, shape, raw)
    if not images:
        raise InvalidInput(f"input {tensor.name!r} holds no images")
    if len(images) > max_images:
        raise TooLarge(f"{len(images)} images in one request; the limit is {max_images} ([limits] max_queue); split the batch")
    return images


def _encoded(tensor, shape: tuple[int, ...], raw: bytes | None) -> list[ImageInput]:
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise InvalidInput(f"input {IMAGES!r} must have shape [N] or [N, 1], not {list(shape)}")
    items = decode_bytes_elements(raw) if raw is not None else list(tensor.contents.bytes_contents)
    if len(items) != shape[0]:
        raise InvalidInput(f"input {IMAGES!r} has shape {list(shape)} but carries {len(items)} elements")
    return [EncodedImage(item) for item in items]


def _pixels(tensor, shape: tuple[int, ...], raw: bytes | None) -> list[ImageInput]:
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[3] != 3:
        raise InvalidInput(f"input {PIXELS!r} must have shape [N, H, W, 3] (RGB), not {list(shape)}")
    count = int(np.prod(shape))
    if raw is not None:
        if len(raw) != count:
            raise InvalidInput(f"input {PIXELS!r} has shape {list(shape)} = {count:,} bytes but carries {len(raw):,}")
        data = np.frombuffer(raw, np.uint8)
    else:
        values = tensor.contents.uint_contents
        if len(values) != count:
            raise InvalidInput(f"input {PIXELS!r} has shape {list(shape)} = {count:,} values but carries {len(values):,}")
        data = np.asarray(values, dtype=np.uint32)
        if data.size and data.max() > 255:
            raise InvalidInput(f"input {PIXELS!r} is UINT8 but holds the value {int(data.max())}")
        data = data.astype(np.uint8)
    frame = shape[1:]
    if raw is not None and shape[0] == 1:
        return [RawPixels(raw, frame, "uint8", "RGB")]  # a camera's one frame: its bytes as they came, not a 150 KB copy
    per_image = count // shape[0] if shape[0] else 0
    return [RawPixels(data[i * per_image : (i + 1) * per_image].tobytes(), frame, "uint8", "RGB") for i in range(shape[0])]


def requested_outputs(request, anomaly: bool = False) -> list[str]:
    """The outputs to send, in the order asked for; the default set when none are named.

    `anomaly`: the task is an anomaly task, which has outputs of its own.
    """
    known = OUTPUT_NAMES + (ANOMALY_OUTPUTS + ANOMALY_ONLY_ON_REQUEST if anomaly else ())
    names = [o.name for o in request.outputs] or list(OUTPUT_NAMES + (ANOMALY_OUTPUTS if anomaly else ()))
    for name in names:
        if name not in known:
            if name in ANOMALY_OUTPUTS + ANOMALY_ONLY_ON_REQUEST:
                raise InvalidInput(f"output {name!r} is for anomaly tasks; {request.model_name!r} is a classification task")
            raise InvalidInput(f"unknown output {name!r}; outputs are {', '.join(map(repr, known))}")
    return names


def output_tensors(names: list[str], labels: list[str], scores: np.ndarray, anomalies=None) -> list[tuple[str, str, list[int], bytes]]:
    """(name, datatype, shape, raw bytes) for each requested output.

    `anomalies`: an anomaly task's answers (edgetl.anomaly.model.AnomalyAnswer), one per image.
    """
    out = []
    for name in names:
        if name == LABELS:
            out.append((LABELS, "BYTES", [len(labels)], encode_bytes_elements([label.encode() for label in labels])))
        elif name == SCORES:
            out.append((SCORES, "FP32", *_fp32(scores)))
        elif name == ANOMALY_SCORE:
            out.append((name, "FP32", *_fp32([a.score for a in anomalies])))
        elif name == ANOMALY_THRESHOLD:
            out.append((name, "FP32", *_fp32([a.threshold for a in anomalies])))
        elif name == ANOMALOUS:
            out.append((name, "BOOL", [len(anomalies)], np.array([a.anomalous for a in anomalies], np.bool_).tobytes()))
        elif name == ANOMALY_MAP:
            out.append((name, "FP32", *_fp32(np.stack([a.map for a in anomalies]))))
    return out


def _fp32(values) -> tuple[list[int], bytes]:
    array = np.ascontiguousarray(values, dtype="<f4")
    return list(array.shape), array.tobytes()


FLAG_FOR_REVIEW = "flag_for_review"


def flag_for_review(request) -> bool:
    """The request's `flag_for_review` parameter: a bool, or a string/int a client had to use instead."""
    if FLAG_FOR_REVIEW not in request.parameters:
        return False
    p = request.parameters[FLAG_FOR_REVIEW]
    kind = p.WhichOneof("parameter_choice")
    if kind == "bool_param":
        return p.bool_param
    if kind == "string_param" and p.string_param.lower() in ("true", "false", "1", "0"):
        return p.string_param.lower() in ("true", "1")
    if kind == "int64_param" and p.int64_param in (0, 1):
        return bool(p.int64_param)
    raise InvalidInput(f"parameter {FLAG_FOR_REVIEW!r} must be a bool (or \"true\"/\"false\"), got {kind}")
