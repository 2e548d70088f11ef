"""Fine-tune a backbone with LoRA (peft) for a task, and export it merged to ONNX.

Runs in the training process only (torch, peft). The network trained is
``TaskNet``: the backbone (LoRA on the layers its plugin declares, from
output stride ``lora_min_stride`` on: edgetl.adapt.lora_targets), the same
multi-scale mean+max pooling as the heads, a LayerNorm and a linear
classifier. Choices, and why:

- batch-norm statistics stay frozen (the backbone runs in eval mode): with a
  few dozen images per class, re-estimated statistics are noise;
- discriminative learning rates: the new classifier learns faster than the
  LoRA weights (``head_learning_rate``);
- augmentation suited to inspection: flips, 90-degree turns (square inputs),
  small shifts, brightness/contrast jitter; never colour or shape changes
  that could turn a defect into a non-defect;
- the best epoch on validation accuracy (ties: lower validation loss) is
  kept. Early stopping is there (``patience``) but off by default (patience =
  epochs): after the linear probe, validation accuracy often stands still for
  three or four epochs before it climbs, and with a few dozen validation
  images patience 3 stopped 2 of 8 held-out cells at epoch 4 (2.5 points
  lower on average; BENCHMARKS.md). All 8 epochs of 300 images fit in
  3 minutes on 2 cores, with the guided head's maps and fits (median 172 s);
- the classifier is first fitted on the frozen features (a linear probe),
  then fine-tuned with the LoRA weights ("LP-FT"): a random classifier's
  large early gradients would otherwise wreck the pretrained features in
  the first epoch (we saw a loss of 5.4 for 6 classes without it);
- after early stopping picked the best epoch on the validation split, the
  model continues for ``refit_epochs`` epochs with the validation images
  added (``continue_tasknet``), at half the learning rate: the served model
  learns from every label for a quarter of the cost of training twice.
  ``refit_epochs`` 0 serves the holdout model; with a guided head on its
  tuned maps that head is still fitted again on every label, and the job
  saves the refit, a second export and a second pass over the maps (~60 s
  of 230 for 300 images with every layer adapted), for 1.3 points held out
  (BENCHMARKS.md);
- every adapted layer trains from the first epoch. ``unfreeze`` "progressive"
  (the coarsest stride's layers first, each finer stride after an equal share
  of the epochs) is the literature's guard against forgetting, but LoRA's
  weights start at zero, so nothing pretrained is at risk early, and on the
  tuning set it cost 1.6 points (BENCHMARKS.md, "What was tried").

Training runs in channels-last memory format (NHWC): on a 2-core x86 CPU a
step of Lite0 at 224 px is 1.5x faster than in PyTorch's default NCHW
(75 -> 50 ms per image forward and backward, the same gradients to 3e-5;
oneDNN's convolutions prefer it; benchmarks/lora_step.py). The export is of a copy in the
default format, so the ONNX model is the same either way.

``scratch=True`` trains the same network from random weights, every
parameter trainable and batch-norm learning: the baseline that shows what
transfer buys.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from edgetl.adapt.lora_targets import lora_layers
from edgetl.backbones.spec import POOLED, Backbone
from edgetl.errors import InvalidInput

DEFAULTS = {
    "epochs": 8, "rank": 8, "learning_rate": 1e-3, "head_learning_rate": 1e-3, "batch_size": 16, "patience": 8, "augment": True, "seed": 0,
    "refit_epochs": 2, "schedule": "constant", "lora_min_stride": 8, "unfreeze": "all",
}
#: Learning-rate schedules over the epochs: constant, or cosine from the full rate down toward zero at the last epoch.
SCHEDULES = ("constant", "cosine")
#: Which adapted layers train when: all from the first epoch, or progressive (the coarsest stride first,
#: each finer one after an equal share of the epochs; unfreeze_stride). Like `schedule`, an option of the
#: training process only (benchmarks pass it; the API and CLI do not offer it).
UNFREEZE = ("all", "progressive")
REFIT_LR_SCALE = 0.5
SCRATCH_DEFAULTS = {**DEFAULTS, "learning_rate": 2e-3, "head_learning_rate": 2e-3}


def torch_pool(features: dict[str, torch.Tensor], names) -> torch.Tensor:
    """The torch twin of edgetl.runtime.heads.pool_features."""
    parts = []
    for name in names:
        x = features[name]
        if x.ndim == 2:
            parts.append(x)
        else:
            flat = x.flatten(2)
            parts.append(flat.mean(dim=2))
            parts.append(flat.amax(dim=2))
    return torch.cat(parts, dim=1)


class TaskNet(nn.Module):
    """Backbone -> multi-scale pooling -> LayerNorm -> linear: images to the task's logits."""

    def __init__(self, backbone: nn.Module, feature_names, feature_dim: int, num_classes: int, adapted_strides: dict[str, float] | None = None):
        super().__init__()
        self.backbone = backbone
        #: the LoRA-adapted layers' names (as the backbone names them) and output strides
        self.adapted_strides = dict(adapted_strides or {})
        self.feature_names = list(feature_names)
        self.norm = nn.LayerNorm(feature_dim)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        embedding = self.norm(torch_pool(features, self.feature_names))
        # The embedding is exported beside the logits: drift monitoring reads it. The tuned
        # backbone's maps are there too, for a guided head on them (worker._tuned_guided_heads);
        # an export names the outputs it keeps.
        return {**features, "logits": self.classifier(embedding), "embedding": embedding}


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    r = torch.rand(n, 6, generator=generator)
    out = []
    for i in range(n):
        xi = x[i]
        if r[i, 0] < 0.5:
            xi = xi.flip(-1)
        if r[i, 1] < 0.5:
            xi = xi.flip(-2)
        if h == w and r[i, 2] < 0.5:
            xi = torch.rot90(xi, 1, (1, 2))
        shift = (int((r[i, 3] - 0.5) * 0.16 * h), int((r[i, 4] - 0.5) * 0.16 * w))
        xi = torch.roll(xi, shifts=shift, dims=(1, 2))
        gain = 1 + (r[i, 5] - 0.5) * 0.2
        xi = xi * gain + (r[i, 5] - 0.5) * 0.2
        out.append(xi)
    return torch.stack(out)


def build_tasknet(backbone: Backbone, num_classes: int, options: dict, scratch: bool = False) -> tuple[TaskNet, nn.Module | None]:
    """The network to train, and the peft model inside it (None when scratch)."""
    import peft

    spec = backbone.spec
    base = backbone.build()
    names = (POOLED, *spec.feature_maps)
    strides, dim = _probe(base, names, spec.input_size)
    peft_model = None
    if scratch:
        for module in base.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        for p in base.parameters():
            p.requires_grad_(True)
        inner = base
    else:
        rank = int(options["rank"])
        targets = lora_layers(spec, strides, int(options.get("lora_min_stride", DEFAULTS["lora_min_stride"])))
        config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, lora_dropout=0.0, bias="none")
        # peft draws the LoRA weights from torch's global generator: seeded here, a job is the same job
        # whatever ran before it in the process (benchmarks run many in one; a cell's result depended on
        # the cells before it).
        torch.manual_seed(int(options.get("seed", 0)))
        peft_model = peft.get_peft_model(base, config)
        inner = peft_model
    adapted = {} if scratch else {name: strides[name] for name in targets}
    return TaskNet(inner, names, dim, num_classes, adapted).to(memory_format=torch.channels_last), peft_model


def unfreeze_from(net: TaskNet, min_stride: float) -> int:
    """Train only the LoRA weights of layers at output stride `min_stride` or coarser; returns how many layers train.

    A frozen LoRA weight gets no gradient, so AdamW leaves it alone (weight
    decay included), and autograd stops at the finest layer that trains.
    """
    training = 0
    for name, module in net.backbone.named_modules():
        if not hasattr(module, "lora_A"):
            continue
        stride = next((s for target, s in net.adapted_strides.items() if name == target or name.endswith("." + target)), None)
        if stride is None:
            continue
        on = stride >= min_stride
        training += on
        for param in (*module.lora_A.parameters(), *module.lora_B.parameters()):
            param.requires_grad_(on)
    return training


def unfreeze_stride(unfreeze: str, strides: list[float], epoch: int, epochs: int) -> float:
    """The finest output stride whose LoRA layers train in epoch `epoch` (1-based) of `epochs`."""
    if unfreeze not in UNFREEZE:
        raise InvalidInput(f"LoRA option unfreeze must be one of {', '.join(UNFREEZE)}, got {unfreeze!r}")
    stages = sorted(set(strides), reverse=True)  # coarsest first
    if unfreeze == "all" or not stages:
        return min(stages, default=0.0)
    return stages[min(len(stages) - 1, (epoch - 1) * len(stages) // epochs)]


def _probe(base: nn.Module, names, input_size: tuple[int, int]) -> tuple[dict[str, float], int]:
    """Each module's output stride (input height over its output's; 2-D outputs: infinite) and the pooled feature width, from one zero image."""
    strides: dict[str, float] = {}
    hooks = []
    input_height, input_width = input_size
    for name, module in base.named_modules():
        def record(_module, _inputs, output, name=name):
            if isinstance(output, torch.Tensor):
                strides[name] = input_height / output.shape[2] if output.ndim == 4 else float("inf")
        hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            dim = torch_pool(base.eval()(torch.zeros(1, 3, input_height, input_width)), names).shape[1]
    finally:
        for hook in hooks:
            hook.remove()
    return strides, dim


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """A batch in the memory format the network trains in (module docstring: channels last)."""
    return x.contiguous(memory_format=torch.channels_last)


def train_tasknet(
    net: TaskNet,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    options: dict,
    scratch: bool,
    progress: Callable[[dict], None],
    should_stop: Callable[[], bool] = lambda: False,
    probe_features: np.ndarray | None = None,
) -> dict:
    """Train in place; returns {"best_epoch", "val_accuracy", "epochs_run"}.

    `probe_features` [N, D]: the frozen backbone's pooled features of `train_x`
    (as `torch_pool` pools them), when the caller has them (the job reads them
    from ONNX Runtime and the feature cache); else the probe computes them here.
    """
    torch.manual_seed(int(options["seed"]))
    generator = torch.Generator().manual_seed(int(options["seed"]))
    optimizer = _optimizer(net, options)
    loss_fn = _loss(train_y, num_classes)
    tx, ty = torch.from_numpy(train_x), torch.from_numpy(train_y).long()
    vx, vy = torch.from_numpy(val_x), torch.from_numpy(val_y).long()
    epochs, patience = int(options["epochs"]), int(options["patience"])
    schedule = str(options.get("schedule", "constant"))
    _rate_scale(schedule, 1, epochs)  # an unknown schedule fails here, before any training
    unfreeze = str(options.get("unfreeze", "all"))
    adapted = list(net.adapted_strides.values())
    unfreeze_stride(unfreeze, adapted, 1, epochs)  # and an unknown unfreeze
    if not scratch:
        linear_probe(net, tx, ty, loss_fn, features=None if probe_features is None else torch.from_numpy(np.asarray(probe_features, np.float32)))
        progress({"phase": "train", "epoch": 0, "epochs": epochs, "message": "linear probe fitted on frozen features"})
    best = {"acc": -1.0, "loss": float("inf"), "epoch": 0, "state": None}
    started = time.monotonic()
    epoch = 0
    base_rates = [group["lr"] for group in optimizer.param_groups]
    training_from = None
    for epoch in range(1, epochs + 1):
        _set_rates(optimizer, base_rates, _rate_scale(schedule, epoch, epochs))
        if adapted and unfreeze != "all" and (stride := unfreeze_stride(unfreeze, adapted, epoch, epochs)) != training_from:
            layers = unfreeze_from(net, stride)
            training_from = stride
            progress({"phase": "train", "epoch": epoch, "epochs": epochs, "message": f"LoRA trains {layers} layers, from output stride {stride:g} on"})
        loss = _epoch(net, optimizer, loss_fn, tx, ty, options, generator, scratch, should_stop)
        val_acc, val_loss = _evaluate(net, vx, vy, loss_fn)
        elapsed = time.monotonic() - started
        progress({"phase": "train", "epoch": epoch, "epochs": epochs, "loss": loss, "val_accuracy": val_acc, "elapsed_s": elapsed, "eta_s": elapsed / epoch * (epochs - epoch)})
        if val_acc > best["acc"] or (val_acc == best["acc"] and val_loss < best["loss"]):
            best = {"acc": val_acc, "loss": val_loss, "epoch": epoch, "state": copy.deepcopy(net.state_dict())}
        elif epoch - best["epoch"] >= patience:
            progress({"phase": "train", "epoch": epoch, "epochs": epochs, "message": f"early stop: no validation gain since epoch {best['epoch']}"})
            break
    net.load_state_dict(best["state"])
    if training_from is not None:
        unfreeze_from(net, 0.0)  # the refit, and anything after, trains every adapted layer
    net.eval()
    return {"best_epoch": best["epoch"], "val_accuracy": best["acc"], "epochs_run": epoch}


def continue_tasknet(net: TaskNet, x: np.ndarray, y: np.ndarray, num_classes: int, options: dict, epochs: int, progress: Callable[[dict], None]) -> None:
    """More epochs on `x` (all labels), at REFIT_LR_SCALE times the learning rates; no validation is left to stop on."""
    generator = torch.Generator().manual_seed(int(options["seed"]) + 1)
    scaled = {**options, "learning_rate": float(options["learning_rate"]) * REFIT_LR_SCALE, "head_learning_rate": float(options["head_learning_rate"]) * REFIT_LR_SCALE}
    optimizer = _optimizer(net, scaled)
    loss_fn = _loss(y, num_classes)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y).long()
    started = time.monotonic()
    for epoch in range(1, epochs + 1):
        loss = _epoch(net, optimizer, loss_fn, tx, ty, options, generator, scratch=False, should_stop=lambda: False)
        elapsed = time.monotonic() - started
        progress({"phase": "refit", "epoch": epoch, "epochs": epochs, "loss": loss, "elapsed_s": elapsed, "eta_s": elapsed / epoch * (epochs - epoch)})
    net.eval()


def _rate_scale(schedule: str, epoch: int, epochs: int) -> float:
    """The fraction of the base learning rates epoch `epoch` (1-based) of `epochs` trains at."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + np.cos(np.pi * (epoch - 1) / epochs))
    raise InvalidInput(f"LoRA option schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def _set_rates(optimizer: torch.optim.Optimizer, base_rates: list[float], scale: float) -> None:
    for group, rate in zip(optimizer.param_groups, base_rates):
        group["lr"] = rate * scale


def _optimizer(net: TaskNet, options: dict) -> torch.optim.Optimizer:
    """Discriminative learning rates: the LoRA (or scratch) weights and the classifier each at their own."""
    backbone_params = [p for p in net.backbone.parameters() if p.requires_grad]
    head_params = list(net.norm.parameters()) + list(net.classifier.parameters())
    return torch.optim.AdamW(
        [{"params": backbone_params, "lr": float(options["learning_rate"])}, {"params": head_params, "lr": float(options["head_learning_rate"])}],
        weight_decay=1e-4,
    )


def _loss(y: np.ndarray, num_classes: int) -> nn.Module:
    """Cross-entropy with class weights: every class counts the same however many labels it has."""
    counts = np.bincount(y, minlength=num_classes)
    return nn.CrossEntropyLoss(weight=torch.tensor(len(y) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32))


def _epoch(net: TaskNet, optimizer, loss_fn, tx, ty, options: dict, generator, scratch: bool, should_stop) -> float:
    """One pass over the data in shuffled batches; returns the mean training loss."""
    # Batch-norm statistics stay frozen for LoRA (eval mode); scratch must learn them.
    net.train(scratch)
    if not scratch:
        net.norm.train()
    batch = int(options["batch_size"])
    order = torch.randperm(len(tx), generator=generator)
    total, seen = 0.0, 0
    for start in range(0, len(order), batch):
        if should_stop():
            raise KeyboardInterrupt
        idx = order[start : start + batch]
        xb = augment(tx[idx], generator) if options["augment"] else tx[idx]
        loss = loss_fn(net(nhwc(xb))["logits"], ty[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


def linear_probe(net: TaskNet, tx: torch.Tensor, ty: torch.Tensor, loss_fn, steps: int = 200, features: torch.Tensor | None = None) -> None:
    """Fit the norm + classifier on frozen features (full batch), before fine-tuning.

    `features`: those of `tx`, already computed (a PyTorch pass over the
    training images costs ~37 ms an image here, ONNX Runtime's ~7).
    """
    net.eval()
    if features is not None:
        if features.shape != (len(tx), net.norm.normalized_shape[0]):
            raise ValueError(f"probe features {tuple(features.shape)} do not match {len(tx)} images of {net.norm.normalized_shape[0]} features")
        feats = features
    else:
        with torch.no_grad():
            feats = torch.cat([torch_pool(net.backbone(nhwc(tx[i : i + 32])), net.feature_names) for i in range(0, len(tx), 32)])
    params = list(net.norm.parameters()) + list(net.classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        loss = loss_fn(net.classifier(net.norm(feats)), ty)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _evaluate(net: TaskNet, vx, vy, loss_fn) -> tuple[float, float]:
    if len(vx) == 0:
        return 0.0, float("inf")
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(nhwc(vx[i : i + 32]))["logits"] for i in range(0, len(vx), 32)])
    return float((logits.argmax(1) == vy).float().mean()), float(loss_fn(logits, vy))


def merged_for_export(net: TaskNet) -> TaskNet:
    """A copy of the TaskNet with LoRA weights merged into the backbone (plain convs again).

    A copy, so the LoRA model can go on training after its holdout export.
    """
    import peft

    merged = copy.deepcopy(net)
    if isinstance(merged.backbone, peft.PeftModel):
        merged.backbone = merged.backbone.merge_and_unload()
    return merged.to(memory_format=torch.contiguous_format).eval()
