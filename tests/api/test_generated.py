"""The checked-in generated code is exactly what the protos produce (DESIGN.md decision 6)."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_the_protos(tmp_path):
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.generate(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert fresh, "protoc produced nothing"
    stale = [str(rel) for rel in fresh if not (ROOT / rel).is_file() or not filecmp.cmp(tmp_path / rel, ROOT / rel, shallow=False)]
    assert not stale, f"generated code is out of date: {stale}; run `python protos/generate.py` and commit"
    checked_in = {p.relative_to(ROOT) for p in (ROOT / "edgetl" / "api").rglob("*_pb2*.py*")}
    assert checked_in == {rel for rel in fresh}, "generated files without a proto (or the reverse)"


def test_wire_package_is_edgetl_v1():
    from edgetl.api.v1 import inference_pb2, model_pb2

    assert inference_pb2.DESCRIPTOR.package == "edgetl.v1" and model_pb2.DESCRIPTOR.package == "edgetl.v1"
    assert inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name == "edgetl.v1.InferenceService"
