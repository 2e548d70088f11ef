"""Refuse ONNX files that reach outside themselves, before ONNX Runtime opens them.

Two things an untrusted model file could do on load: pull tensor data from
any path (external data with a ``location`` like ``../../etc/shadow``), or
need operators from a custom-op library. Both are refused here. The serving
process has no ``onnx`` package, so this walks the protobuf wire format
itself, over just the fields involved (numbers from onnx.proto):

    ModelProto:  7 graph, 8 opset_import, 25 functions
    GraphProto:  1 node, 5 initializer, 15 sparse_initializer
    NodeProto:   5 attribute          AttributeProto: 5 t, 6 g, 10 tensors, 11 graphs
    TensorProto: 13 external_data     StringStringEntryProto: 1 key, 2 value
    SparseTensorProto: 1 values, 2 indices
    OperatorSetIdProto: 1 domain      FunctionProto: 10 domain
"""

from __future__ import annotations

from pathlib import Path

from edgetl.errors import UntrustedFile

#: Operator domains ONNX Runtime implements itself.
KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft", "com.microsoft.nchwc"}


def check_model(path: Path) -> None:
    """Raise UntrustedFile if the model at `path` loads data from outside its
    directory or uses operator domains that neither ORT nor the model itself defines."""
    path = Path(path)
    model = _fields(memoryview(path.read_bytes()))
    local = {bytes(_first(_fields(f), 10, b"")).decode() for f in model.get(25, [])}
    for opset in model.get(8, []):
        domain = bytes(_first(_fields(opset), 1, b"")).decode(errors="replace")
        if domain not in KNOWN_DOMAINS and domain not in local:
            raise UntrustedFile(f"{path.name} needs operators from domain {domain!r}, which would need a custom-op library; refused")
    for graph in model.get(7, []):
        _check_graph(graph, path)


def _check_graph(buf, path: Path) -> None:
    graph = _fields(buf)
    for tensor in graph.get(5, []):
        _check_tensor(tensor, path)
    for sparse in graph.get(15, []):
        fields = _fields(sparse)
        for tensor in fields.get(1, []) + fields.get(2, []):
            _check_tensor(tensor, path)
    for node in graph.get(1, []):
        for attribute in _fields(node).get(5, []):
            a = _fields(attribute)
            for tensor in a.get(5, []) + a.get(10, []):
                _check_tensor(tensor, path)
            for sub in a.get(6, []) + a.get(11, []):
                _check_graph(sub, path)


def _check_tensor(buf, path: Path) -> None:
    for entry in _fields(buf).get(13, []):
        e = _fields(entry)
        if bytes(_first(e, 1, b"")) != b"location":
            continue
        location = bytes(_first(e, 2, b"")).decode(errors="replace")
        base = path.parent.resolve()
        target = (base / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(base):
            raise UntrustedFile(f"{path.name} loads tensor data from {location!r}, outside its own directory; refused")


def _first(fields: dict, number: int, default):
    values = fields.get(number)
    return values[0] if values else default


def _fields(buf) -> dict[int, list]:
    """Top-level fields of one message: number -> values (bytes views for length-delimited)."""
    out: dict[int, list] = {}
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise UntrustedFile(f"not a valid ONNX file (protobuf wire type {wire} at byte {pos})")
        if pos > end:
            raise UntrustedFile("not a valid ONNX file (cut short)")
        out.setdefault(number, []).append(value)
    return out


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise UntrustedFile("not a valid ONNX file (bad varint)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
