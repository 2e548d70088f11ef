"""`edgetl export triton`: a task's active adapter as a Triton model repository.

A line that outgrows one edgetl box moves to Triton Inference Server without
retraining: the repository serves the same numbers as edgetl. Layout::

    OUT/
      <task>/            ensemble: pixels -> <task>_backbone -> <task>_head -> scores
        config.pbtxt
        1/               (empty: ensembles have no model file)
        labels.txt
      <task>_backbone/   ONNX: uint8 RGB pixels [N, H, W, 3] -> normalised -> backbone outputs
        config.pbtxt     TensorRT FP16 accelerator with an engine cache
        1/model.onnx
      <task>_head/       ONNX: backbone outputs -> class probabilities [N, classes]
        config.pbtxt
        1/model.onnx
        labels.txt       for Triton's classification extension (class_count)

Decoding and resizing stay with the client (a camera usually delivers the
right size, or Triton's DALI backend does it); normalisation and the colour
order are folded into the backbone model. Requires the `onnx` package (the
`train` extra); the data directory is read, never written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.adapt.versions import AdapterVersions
from edgetl.backbones.spec import LOGITS
from edgetl.db import DB_FILE
from edgetl.errors import ConfigError, InvalidInput, NotFound, NotReady
from edgetl.runtime.adapters import read_manifest, verify_files
from edgetl.runtime.store import ModelStore
from edgetl.tasks.store import TaskStore

OPSET = 18
MAX_BATCH = 8
PIXELS, SCORES = "pixels", "scores"


@dataclass
class ExportedTask:
    task: str
    adapter_version: str
    class_names: list[str]
    input_size: tuple[int, int]
    models: dict[str, Path]  # model name -> its directory


def export_triton(data_dir: Path, task_name: str, out: Path, max_batch: int = MAX_BATCH) -> ExportedTask:
    """Write the Triton repository for `task_name`'s active adapter under `out`.

    The models are built in a temp dir inside `out` and renamed into place
    one by one, so a failed export leaves no half-written model behind.
    """
    try:
        import onnx
    except ImportError as exc:
        raise ConfigError("exporting to Triton needs the onnx package: pip install 'edgetl[train]'") from exc
    data_dir = Path(data_dir)
    tasks = TaskStore(data_dir / DB_FILE)
    versions = AdapterVersions(data_dir, data_dir / DB_FILE)
    try:
        task = tasks.get(task_name)
        if task is None:
            known = ", ".join(t.name for t in tasks.list()) or "none"
            raise NotFound(f"unknown task {task_name!r} in {data_dir}; tasks: {known}")
        version = versions.active_version(task.name)
        if version is None:
            raise NotReady(f"task {task.name!r} has no active adapter to export; train or activate one")
        adapter_dir = versions.get(task.name, version).path
    finally:
        tasks.close()
        versions.close()
    manifest = read_manifest(adapter_dir)
    if manifest["method"] == "anomaly":
        # The bank's nearest-neighbour search and top-1 % pooling would be an ONNX graph of their own
        # (MatMul against the bank as an initializer, ReduceMin, TopK); not built yet.
        raise InvalidInput(f"task {task.name!r} is an anomaly task; the Triton export covers classify tasks (head and LoRA adapters) only, so far")
    if manifest.get("options", {}).get("pooling") == "guided":
        # The same nearest-neighbour search as an anomaly bank, before the linear layer (a head's, or one on LoRA's tuned maps).
        raise InvalidInput(
            f"task {task.name!r} serves a guided head (it searches a bank of good patches); the Triton export covers plain heads and LoRA "
            f"with global pooling. For a Triton deployment train one with: edgetl train --task {task.name} --method {manifest['method']} --pooling global"
        )
    if int(manifest.get("serve_views", 1)) > 1:
        # Averaging over flips and turns would need the views inside the ensemble; the exported model answers the image as sent.
        raise InvalidInput(
            f"task {task.name!r} answers each image from {manifest['serve_views']} views (serve_views); the Triton export answers from the image "
            f"as sent. For a Triton deployment train with: edgetl train --task {task.name} --serve-views 1"
        )
    verify_files(adapter_dir, manifest)  # never export a damaged adapter
    base = ModelStore(data_dir / "store").load(data_dir / "store" / "exports" / manifest["export_id"])
    spec = base.manifest["input"]
    height, width = spec["shape"][2], spec["shape"][3]

    if manifest["method"] == "head":
        with np.load(adapter_dir / "head.npz") as z:
            head_inputs = tuple(str(n) for n in z["inputs"])
            head = _linear_head_model(head_inputs, base.output_shapes, z["mean"], z["std"], z["weight"], z["bias"])
        # An INT8 head has its own quantized backbone; a float head runs on the shared export.
        backbone_file = adapter_dir / "model.onnx" if manifest.get("onnx") else base.onnx_path
        feature_shapes = {name: base.output_shapes[name] for name in head_inputs}
    else:  # lora: the merged model has the task's classifier on top
        head_inputs = (LOGITS,)
        head = _softmax_head_model(len(task.class_names))
        backbone_file = adapter_dir / "model.onnx"
        feature_shapes = {LOGITS: [len(task.class_names)]}
    backbone = _with_pixel_input(backbone_file, head_inputs, spec)

    out = Path(out)
    names = {"ensemble": task.name, "backbone": f"{task.name}_backbone", "head": f"{task.name}_head"}
    classes = len(task.class_names)
    labels = "".join(f"{c}\n" for c in task.class_names)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".edgetl-{task.name}-", dir=out))
    try:
        for role, model in (("backbone", backbone), ("head", head)):
            (staging / names[role] / "1").mkdir(parents=True)
            onnx.save(model, str(staging / names[role] / "1" / "model.onnx"))
        (staging / names["ensemble"] / "1").mkdir(parents=True)
        for role in ("head", "ensemble"):
            (staging / names[role] / "labels.txt").write_text(labels)
        int8 = "int8" in (manifest.get("onnx") or {})
        (staging / names["backbone"] / "config.pbtxt").write_text(_backbone_config(names["backbone"], (height, width), feature_shapes, max_batch, int8))
        (staging / names["head"] / "config.pbtxt").write_text(_head_config(names["head"], feature_shapes, classes, max_batch))
        (staging / names["ensemble"] / "config.pbtxt").write_text(_ensemble_config(names, (height, width), list(feature_shapes), classes, max_batch))
        (staging / names["ensemble"] / "edgetl.json").write_text(json.dumps({
            "task": task.name, "adapter_version": str(version), "method": manifest["method"], "backbone": manifest["backbone"],
            "export_id": manifest["export_id"], "class_names": list(task.class_names), "input_size": [height, width],
        }, indent=2) + "\n")
        for name in names.values():
            if (out / name).exists():
                shutil.rmtree(out / name)
            (staging / name).rename(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportedTask(task.name, str(version), list(task.class_names), (height, width), {k: out / v for k, v in names.items()})


# -- ONNX graphs ---------------------------------------------------------------
def _with_pixel_input(onnx_file: Path, outputs: tuple[str, ...], spec: dict):
    """The backbone with uint8 RGB NHWC in front (cast, channel order, normalise, to NCHW), only `outputs` out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(onnx_file))
    graph = model.graph
    original = graph.input[0].name
    mean, std = np.asarray(spec["mean"], np.float32), np.asarray(spec["std"], np.float32)
    # (x / 255 - mean) / std = x * scale + offset, per channel, as edgetl's preprocessing does.
    scale = (1.0 / (255.0 * std)).reshape(1, 3, 1, 1).astype(np.float32)
    offset = (-mean / std).reshape(1, 3, 1, 1).astype(np.float32)
    order = [0, 1, 2] if spec["color_order"] == "RGB" else [2, 1, 0]
    nodes = [
        helper.make_node("Cast", [PIXELS], ["edgetl_f32"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["edgetl_f32"], ["edgetl_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Gather", ["edgetl_nchw", "edgetl_order"], ["edgetl_ordered"], axis=1),
        helper.make_node("Mul", ["edgetl_ordered", "edgetl_scale"], ["edgetl_scaled"]),
        helper.make_node("Add", ["edgetl_scaled", "edgetl_offset"], [original]),
    ]
    graph.initializer.extend([
        numpy_helper.from_array(np.asarray(order, np.int64), "edgetl_order"),
        numpy_helper.from_array(scale, "edgetl_scale"),
        numpy_helper.from_array(offset, "edgetl_offset"),
    ])
    height, width = spec["shape"][2], spec["shape"][3]
    pixels = helper.make_tensor_value_info(PIXELS, TensorProto.UINT8, ["batch", height, width, 3])
    kept = [o for o in graph.output if o.name in outputs]
    del graph.input[:]
    graph.input.append(pixels)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    del graph.output[:]
    graph.output.extend(kept)
    onnx.checker.check_model(model)
    return model


def _linear_head_model(inputs, shapes, mean, std, weight, bias):
    """pool (mean and max over space for maps) -> standardise -> linear -> softmax, as LinearHead does."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, parts, graph_inputs = [], [], []
    axes = numpy_helper.from_array(np.asarray([2, 3], np.int64), "edgetl_axes")
    for name in inputs:
        shape = shapes[name]
        graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape]))
        if len(shape) == 1:
            parts.append(name)
            continue
        nodes.append(helper.make_node("ReduceMean", [name, "edgetl_axes"], [f"{name}_mean"], keepdims=0))
        nodes.append(helper.make_node("ReduceMax", [name, "edgetl_axes"], [f"{name}_max"], keepdims=0))
        parts += [f"{name}_mean", f"{name}_max"]
    nodes += [
        helper.make_node("Concat", parts, ["features"], axis=1),
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "inv_std"], ["standardised"]),
        helper.make_node("Gemm", ["standardised", "weight", "bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], [SCORES], axis=1),
    ]
    initializers = [
        axes,
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array((1.0 / std).astype(np.float32), "inv_std"),
        numpy_helper.from_array(weight.astype(np.float32), "weight"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
    ]
    output = helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, ["batch", int(weight.shape[0])])
    return _model(helper.make_graph(nodes, "edgetl_linear_head", graph_inputs, [output], initializers))


def _softmax_head_model(classes: int):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Softmax", [LOGITS], [SCORES], axis=1)], "edgetl_softmax_head",
        [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["batch", classes])],
        [helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, ["batch", classes])],
    )
    return _model(graph)


def _model(graph):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgetl")
    model.ir_version = 8  # readable by the ONNX Runtime in Triton 23.x and later
    onnx.checker.check_model(model)
    return model


# -- Triton configs (protobuf text format of inference.ModelConfig) --------------
def _dims(shape) -> str:
    return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"


def _backbone_config(name: str, size, features: dict, max_batch: int, int8: bool = False) -> str:
    # An INT8 adapter's model carries its scales (QDQ): TensorRT needs its INT8 mode, and no calibration.
    precision = "INT8" if int8 else "FP16"
    outputs = ",\n".join(f'  {{ name: "{n}", data_type: TYPE_FP32, dims: {_dims(s)} }}' for n, s in features.items())
    return f'''name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [
  {{ name: "{PIXELS}", data_type: TYPE_UINT8, dims: {_dims([*size, 3])} }}
]
output [
{outputs}
]
dynamic_batching {{ max_queue_delay_microseconds: 500 }}
instance_group [ {{ kind: KIND_GPU, count: 1 }} ]
# TensorRT through ONNX Runtime, {precision}, with the engine cached across restarts
# (the first load builds it: minutes on a Jetson). Without a GPU, Triton
# needs instance_group KIND_CPU and no gpu_execution_accelerator.
optimization {{
  execution_accelerators {{
    gpu_execution_accelerator : [ {{
      name : "tensorrt"
      parameters {{ key: "precision_mode" value: "{precision}" }}
      parameters {{ key: "max_workspace_size_bytes" value: "1073741824" }}
      parameters {{ key: "trt_engine_cache_enable" value: "1" }}
      parameters {{ key: "trt_engine_cache_path" value: "/tmp/edgetl-trt-cache" }}
    }} ]
  }}
}}
'''


def _head_config(name: str, features: dict, classes: int, max_batch: int) -> str:
    inputs = ",\n".join(f'  {{ name: "{n}", data_type: TYPE_FP32, dims: {_dims(s)} }}' for n, s in features.items())
    return f'''name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [
{inputs}
]
output [
  {{ name: "{SCORES}", data_type: TYPE_FP32, dims: [ {classes} ], label_filename: "labels.txt" }}
]
'''


def _ensemble_config(names: dict, size, features: list[str], classes: int, max_batch: int) -> str:
    backbone_out = "\n".join(f'      output_map {{ key: "{n}" value: "{n}" }}' for n in features)
    head_in = "\n".join(f'      input_map {{ key: "{n}" value: "{n}" }}' for n in features)
    return f'''name: "{names["ensemble"]}"
platform: "ensemble"
max_batch_size: {max_batch}
input [
  {{ name: "{PIXELS}", data_type: TYPE_UINT8, dims: {_dims([*size, 3])} }}
]
output [
  {{ name: "{SCORES}", data_type: TYPE_FP32, dims: [ {classes} ], label_filename: "labels.txt" }}
]
ensemble_scheduling {{
  step [
    {{
      model_name: "{names["backbone"]}"
      model_version: -1
      input_map {{ key: "{PIXELS}" value: "{PIXELS}" }}
{backbone_out}
    }},
    {{
      model_name: "{names["head"]}"
      model_version: -1
{head_in}
      output_map {{ key: "{SCORES}" value: "{SCORES}" }}
    }}
  ]
}}
'''
