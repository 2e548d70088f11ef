"""One LoRA training step of the built-in backbone: memory formats, and how deep LoRA reaches.

    python benchmarks/lora_step.py [--rounds 3] [--steps 5] [--threads 2]
    python benchmarks/lora_step.py --min-strides 1 4 8 16   # channels-last, LoRA from each output stride on

The step is edgetl.adapt.trainer_lora's own (forward, loss, backward,
optimiser) on a batch of 16 random 224 px images, in interleaved rounds.
Without --min-strides it compares PyTorch's default memory format with
channels-last at the default floor, and checks that both layouts give the
same loss and gradients (LoRA jobs train channels-last since 2026-11-30).
With --min-strides it times channels-last networks whose LoRA starts at each
output stride (`lora_min_stride`: the layers below stay frozen and leave the
backward pass), with a forward pass without gradients beside them (what
validation and a guided head's maps cost per image). BENCHMARKS.md, "Time".
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-strides", type=int, nargs="+", help="time LoRA from each of these output strides on (channels-last)")
    args = parser.parse_args()

    import tempfile

    import torch

    from edgetl.adapt.trainer_lora import DEFAULTS, build_tasknet
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.settings import Settings

    torch.set_num_threads(args.threads)
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), providers=("cpu",), metrics=False)
    backbone = BackboneRegistry.from_settings(settings).get(settings.default_backbone)
    channels_last, _ = build_tasknet(backbone, 6, dict(DEFAULTS))
    default = copy.deepcopy(channels_last).to(memory_format=torch.contiguous_format)
    h, w = backbone.spec.input_size
    x = torch.randn(16, 3, h, w, generator=torch.Generator().manual_seed(0))
    y = torch.arange(16) % 6
    loss_fn = torch.nn.CrossEntropyLoss()
    if args.min_strides:
        floors(args, backbone, x, y, loss_fn)
        return
    nets = {"default (NCHW)": (default, x), "channels-last": (channels_last, x.contiguous(memory_format=torch.channels_last))}

    def step(net, batch):
        net.eval()
        net.norm.train()
        net.zero_grad()
        loss = loss_fn(net(batch)["logits"], y)
        loss.backward()
        return float(loss.detach()), torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    (loss_a, grad_a), (loss_b, grad_b) = (step(*nets[k]) for k in nets)
    print(f"loss {loss_a:.6f} / {loss_b:.6f}; gradients differ by {float((grad_a - grad_b).norm() / grad_a.norm()):.1e} (relative)")
    times = {k: [] for k in nets}
    for _ in range(args.rounds):
        for name, (net, batch) in nets.items():
            step(net, batch)
            started = time.perf_counter()
            for _ in range(args.steps):
                step(net, batch)
            times[name].append((time.perf_counter() - started) / args.steps / len(x) * 1000)
    base = statistics.median(times["default (NCHW)"])
    for name, values in times.items():
        print(f"{name:15} {statistics.median(values):5.1f} ms per image (rounds: {', '.join(f'{v:.1f}' for v in values)}); {base / statistics.median(values):.2f}x")


def floors(args, backbone, x, y, loss_fn) -> None:
    """Channels-last steps with LoRA from each output stride on, and a forward pass without gradients, interleaved."""
    import torch

    from edgetl.adapt.trainer_lora import DEFAULTS, build_tasknet

    batch = x.contiguous(memory_format=torch.channels_last)
    nets = {}
    for floor in args.min_strides:
        net, _ = build_tasknet(backbone, 6, {**DEFAULTS, "lora_min_stride": floor})
        layers = sum(1 for name, _ in net.named_modules() if name.endswith(".lora_A"))
        weights = sum(p.numel() for name, p in net.named_parameters() if "lora_" in name)
        nets[f"LoRA from stride {floor}"] = net
        print(f"LoRA from stride {floor}: {layers} layers, {weights:,} LoRA weights")

    def step(net):
        net.eval()
        net.norm.train()
        net.zero_grad()
        loss_fn(net(batch)["logits"], y).backward()

    def forward(net):
        net.eval()
        with torch.no_grad():
            net(batch)

    runs = {**{name: (step, net) for name, net in nets.items()}, "forward only (no gradients)": (forward, next(iter(nets.values())))}
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (run, net) in runs.items():
            run(net)
            started = time.perf_counter()
            for _ in range(args.steps):
                run(net)
            times[name].append((time.perf_counter() - started) / args.steps / len(x) * 1000)
    first = statistics.median(times[next(iter(times))])
    for name, values in times.items():
        print(f"{name:28} {statistics.median(values):5.1f} ms per image (rounds: {', '.join(f'{v:.1f}' for v in values)}); {first / statistics.median(values):.2f}x")


if __name__ == "__main__":
    main()
