"""Packaging promises: an inference-only install pulls in no torch; the layout exists."""

from __future__ import annotations

import re
from importlib.metadata import entry_points, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "torchvision", "timm", "peft", "onnxscript"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def test_inference_only_install_has_no_torch():
    core = {_name(r) for r in requires("edgetl") if "extra ==" not in r}
    assert core and not core & HEAVY, f"core dependencies pull in {core & HEAVY}"
    assert {"onnxruntime", "grpcio", "numpy", "pluggy"} <= core


def test_train_extra_has_the_training_stack():
    train = {_name(r) for r in requires("edgetl") if 'extra == "train"' in r}
    assert {"torch", "timm", "peft"} <= train


def test_console_script_and_plugin_entry_points():
    assert "edgetl" in {ep.name for ep in entry_points(group="console_scripts")}
    assert {"efficientnet_lite0", "timm"} <= {ep.name for ep in entry_points(group="edgetl")}


def test_top_level_layout():
    for path in ("pyproject.toml", "edgetl", "plugins", "protos", "tests", "deploy", "README.md", "benchmarks", "BENCHMARKS.md", ".ci/run"):
        assert (ROOT / path).exists(), path
