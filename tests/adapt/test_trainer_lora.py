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
    train_tasknet,
)
from edgetl.backbones.registry import BackboneRegistry
from edgetl.errors import InvalidInput
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


def test_lora_adapts_only_the_targets_at_its_min_stride_and_the_layers_below_get_no_backward(data_dir):
    """lora_min_stride: the plugin's targets coarser than the floor get LoRA; finer ones stay plain and frozen,
    and autograd never reaches them (their gradient is the training step's saving)."""
    from edgetl.adapt.trainer_lora import _probe
    from edgetl.backbones.spec import POOLED

    backbone = BackboneRegistry.from_settings(make_settings(data_dir)).get(TINY)
    strides, _ = _probe(backbone.build(), (POOLED, *backbone.spec.feature_maps), backbone.spec.input_size)
    h, w = backbone.spec.input_size
    x, y = torch.randn(4, 3, h, w), torch.tensor([0, 1, 2, 0])
    adapted = {}
    for floor in (1, 8):
        net, _ = build_tasknet(backbone, 3, {**DEFAULTS, "lora_min_stride": floor})
        names = {n.removeprefix("backbone.base_model.model.").removesuffix(".lora_A") for n, _ in net.named_modules() if n.endswith(".lora_A")}
        adapted[floor] = names
        assert names and all(strides[n] >= floor for n in names)
        # Whether autograd records each layer's output: what it records, the backward pass runs through.
        recorded = {}
        hooks = [
            module.register_forward_hook(lambda _m, _i, out, name=name: recorded.__setitem__(name, out.requires_grad))
            for full, module in net.backbone.named_modules()
            if (name := full.removeprefix("base_model.model.")) in strides and strides[name] != float("inf")
        ]
        net.eval()
        _loss(y.numpy(), 3)(net(x)["logits"], y).backward()
        for hook in hooks:
            hook.remove()
        finer_outputs = [recorded[n] for n in recorded if strides[n] < 8]
        assert finer_outputs and any(finer_outputs) == (floor == 1)  # from stride 8 on, nothing finer is on the backward path
        assert all(p.grad is not None for n, p in net.named_parameters() if "lora_B" in n)
    finer = adapted[1] - adapted[8]
    assert finer and all(strides[n] < 8 for n in finer)  # the tiny backbone has targets on both sides of the floor


def test_the_lora_weights_start_from_the_seed_whatever_ran_before(data_dir):
    backbone = BackboneRegistry.from_settings(make_settings(data_dir)).get(TINY)
    first, _ = build_tasknet(backbone, 3, dict(DEFAULTS))
    torch.rand(1000)  # another job's draws in the same process
    second, _ = build_tasknet(backbone, 3, dict(DEFAULTS))
    other, _ = build_tasknet(backbone, 3, {**DEFAULTS, "seed": 1})
    lora = [k for k in first.state_dict() if "lora_A" in k]
    assert lora and all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in lora)
    assert not all(torch.equal(first.state_dict()[k], other.state_dict()[k]) for k in lora)


def test_a_cosine_schedule_lowers_the_rates_epoch_by_epoch_and_a_constant_one_keeps_them(tasknet, monkeypatch):
    import edgetl.adapt.trainer_lora as trainer

    net, (h, w) = tasknet
    seen = []
    real_epoch = trainer._epoch
    monkeypatch.setattr(trainer, "_epoch", lambda net, optimizer, *a: seen.append([g["lr"] for g in optimizer.param_groups]) or real_epoch(net, optimizer, *a))
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (6, 3, h, w)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    for schedule in ("cosine", "constant"):
        seen.clear()
        options = {**DEFAULTS, "batch_size": 6, "epochs": 4, "patience": 4, "schedule": schedule, "learning_rate": 1e-3, "head_learning_rate": 2e-3}
        train_tasknet(net, x, y, x, y, 3, options, scratch=False, progress=lambda e: None)
        backbone_rates = [rates[0] for rates in seen]
        assert len(seen) == 4 and all(rates[1] == 2 * rates[0] for rates in seen)  # both groups scaled alike
        if schedule == "cosine":
            assert backbone_rates[0] == pytest.approx(1e-3) and all(a > b for a, b in zip(backbone_rates, backbone_rates[1:]))
            assert backbone_rates[-1] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 3 / 4)))
        else:
            assert backbone_rates == [pytest.approx(1e-3)] * 4
    with pytest.raises(InvalidInput, match="schedule must be one of constant, cosine"):
        train_tasknet(net, x, y, x, y, 3, {**DEFAULTS, "schedule": "step"}, scratch=False, progress=lambda e: None)


def test_the_linear_probe_fits_the_same_from_onnx_runtime_features_as_from_its_own_pass(data_dir):
    """The job hands the probe the frozen features ONNX Runtime computed (and the head's cache
    keeps); they are the PyTorch backbone's, pooled as TaskNet pools, and the probe fits the same."""
    from edgetl.adapt.trainer_lora import linear_probe, torch_pool
    from edgetl.backbones.spec import POOLED
    from edgetl.runtime.heads import pool_features
    from edgetl.runtime.session import BackboneSession
    from edgetl.runtime.store import ModelStore

    settings = make_settings(data_dir)
    backbone = BackboneRegistry.from_settings(settings).get(TINY)
    store = ModelStore(data_dir / "store")
    session = BackboneSession(store.find(backbone), settings, store.trt_cache)
    h, w = backbone.spec.input_size
    x = np.random.default_rng(1).normal(0, 1, (6, 3, h, w)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    names = (POOLED, *backbone.spec.feature_maps)
    onnx = pool_features(session.run(x, list(names)), names)

    fitted = []
    for features in (None, torch.from_numpy(onnx)):
        torch.manual_seed(0)
        net, _ = build_tasknet(backbone, 3, dict(DEFAULTS))
        if features is None:
            with torch.no_grad():
                np.testing.assert_allclose(torch_pool(net.eval().backbone(torch.from_numpy(x)), net.feature_names).numpy(), onnx, rtol=1e-3, atol=1e-4)
        linear_probe(net, torch.from_numpy(x), torch.from_numpy(y), _loss(y, 3), features=features)
        fitted.append(net.classifier.weight.detach().clone())
    torch.testing.assert_close(fitted[0], fitted[1], rtol=1e-3, atol=1e-3)
    assert fitted[0].abs().sum() > 0
    with pytest.raises(ValueError, match="do not match 6 images"):
        linear_probe(net, torch.from_numpy(x), torch.from_numpy(y), _loss(y, 3), features=torch.from_numpy(onnx[:5]))


def test_progressive_unfreezing_trains_the_coarsest_layers_first_and_every_layer_after(tasknet, monkeypatch):
    """unfreeze=progressive: in each epoch only the LoRA layers at or past that epoch's stride learn (the finer ones
    keep their weights and get no gradient); the coarsest stride trains first, the finest joins last; after training
    every adapted layer trains again (the refit's)."""
    import edgetl.adapt.trainer_lora as trainer
    from edgetl.adapt.trainer_lora import unfreeze_stride

    net, (h, w) = tasknet
    strides = net.adapted_strides
    stages = sorted(set(strides.values()), reverse=True)
    assert len(stages) >= 2, "the tiny backbone must have LoRA layers at two strides at least"

    def lora_b(stride_test):
        return {
            name: module.lora_B
            for name, module in net.backbone.named_modules()
            if hasattr(module, "lora_A") and stride_test(next(s for t, s in strides.items() if name.endswith("." + t) or name == t))
        }

    changed_per_epoch = []
    real_epoch = trainer._epoch

    def watched(net_, optimizer, *a):
        before = {name: [p.detach().clone() for p in b.parameters()] for name, b in lora_b(lambda s: True).items()}
        loss = real_epoch(net_, optimizer, *a)
        after = lora_b(lambda s: True)
        changed_per_epoch.append({name for name, ps in before.items() if any(not torch.equal(p, q) for p, q in zip(ps, after[name].parameters()))})
        return loss

    monkeypatch.setattr(trainer, "_epoch", watched)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (6, 3, h, w)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    epochs = 2 * len(stages)
    events = []
    train_tasknet(net, x, y, x, y, 3, {**DEFAULTS, "batch_size": 6, "epochs": epochs, "patience": epochs, "unfreeze": "progressive"}, scratch=False, progress=events.append)

    for epoch, changed in enumerate(changed_per_epoch, start=1):
        floor = unfreeze_stride("progressive", list(strides.values()), epoch, epochs)
        assert changed == set(lora_b(lambda s: s >= floor)), f"epoch {epoch}: only the layers from stride {floor} on may learn"
    assert unfreeze_stride("progressive", list(strides.values()), 1, epochs) == stages[0]
    assert unfreeze_stride("progressive", list(strides.values()), epochs, epochs) == stages[-1]
    assert [e["message"] for e in events if "LoRA trains" in e.get("message", "")][0].endswith(f"from output stride {stages[0]:g} on")
    assert all(p.requires_grad for n, p in net.named_parameters() if "lora_" in n)  # the refit trains them all
    with pytest.raises(InvalidInput, match="unfreeze must be one of all, progressive"):
        train_tasknet(net, x, y, x, y, 3, {**DEFAULTS, "unfreeze": "gradual"}, scratch=False, progress=lambda e: None)
