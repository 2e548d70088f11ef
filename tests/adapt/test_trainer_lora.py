"""The LoRA network in training (edgetl.adapt.trainer_lora) on the tiny timm backbone: memory format and the merged export copy.

Full LoRA jobs, exported and served, run in tests/server/test_adaptation.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgetl.adapt.trainer_lora import (
    DEFAULTS,
    _epoch,
    _loss,
    _optimizer,
    build_tasknet,
    merged_for_export,
)
from edgetl.backbones.registry import BackboneRegistry
from tests.conftest import TINY, make_settings


@pytest.fixture
def tasknet(data_dir):
    backbone = BackboneRegistry.from_settings(make_settings(data_dir)).get(TINY)
    torch.manual_seed(0)
    net, _ = build_tasknet(backbone, 3, dict(DEFAULTS))
    return net, backbone.spec.input_size


def test_training_runs_channels_last_and_the_export_copy_computes_the_same(tasknet):
    net, (h, w) = tasknet
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0, 1, (6, 3, h, w)).astype(np.float32))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    options = {**DEFAULTS, "batch_size": 3}
    before = {k: v.clone() for k, v in net.state_dict().items() if "lora_" in k}
    _epoch(net, _optimizer(net, options), _loss(y.numpy(), 3), x, y, options, torch.Generator().manual_seed(0), False, lambda: False)
    after = net.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in before.items())  # the LoRA weights learned

    net.eval()
    merged = merged_for_export(net)
    # The export copy is in the default layout (what ONNX export traces) and answers as the trained network does.
    assert all(p.is_contiguous() for p in merged.parameters())
    with torch.no_grad():
        np.testing.assert_allclose(merged(x)["logits"].numpy(), net(x)["logits"].numpy(), rtol=1e-4, atol=1e-4)


def test_the_lora_weights_start_from_the_seed_whatever_ran_before(data_dir):
    backbone = BackboneRegistry.from_settings(make_settings(data_dir)).get(TINY)
    first, _ = build_tasknet(backbone, 3, dict(DEFAULTS))
    torch.rand(1000)  # another job's draws in the same process
    second, _ = build_tasknet(backbone, 3, dict(DEFAULTS))
    other, _ = build_tasknet(backbone, 3, {**DEFAULTS, "seed": 1})
    lora = [k for k in first.state_dict() if "lora_A" in k]
    assert lora and all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in lora)
    assert not all(torch.equal(first.state_dict()[k], other.state_dict()[k]) for k in lora)
