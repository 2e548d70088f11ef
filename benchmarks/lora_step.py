"""One LoRA training step of the built-in backbone, in PyTorch's default memory format and in channels-last.

    python benchmarks/lora_step.py [--rounds 3] [--steps 5] [--threads 2]

The step is edgetl.adapt.trainer_lora's own (forward, loss, backward,
optimiser) on a batch of 16 random 224 px images, in interleaved rounds; it
also checks that both layouts give the same loss and gradients. LoRA jobs
train channels-last since 2026-11-30 (BENCHMARKS.md, "Time").
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


if __name__ == "__main__":
    main()
