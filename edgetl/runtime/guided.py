"""Anomaly-guided pooling: a defect classifier that looks where the part is unlike a good one.

The plain head (`LinearHead`) pools every feature map over the whole image,
so a thin scratch is a few positions among 196 of texture. A guided head
carries a small bank of its task's *good* patches (the labelled good
class, on the two coarsest maps, exactly as an anomaly task's bank:
`edgetl.anomaly.bank`) and pools where an image's patches are far from
it: the mean of the K most anomalous patches, a softmax-weighted mean of
all patches (weights grow with the distance), and the K largest distances
with the mean and spread of all of them. A linear classifier reads that.

On defects nobody here tuned on (benchmarks/heldout.py, relief and blend,
8 surfaces, 2 seeds) the server's guided head scored 0.772 / 0.813 / 0.849
at 10 / 20 / 50 labels per class against 0.671 / 0.750 / 0.815 for the
plain head; with distances in units of the bank's local spread (since
2026-12-04; the server's job, seed 0) 0.791 / 0.847 / 0.879 against
0.763 / 0.815 / 0.851 for the same cells without. It costs one nearest-neighbour
search per image (9 ms on 2 cores in a live server, as an anomaly task's
score; BENCHMARKS.md).

Numpy only: serving imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgetl.anomaly.bank import BankSearch, patch_features, spread_weights
from edgetl.runtime.heads import LinearHead

#: The most anomalous patches averaged into the defect's descriptor.
TOP_K = 4
#: Images (or views) whose patches share one search against the bank: 8 x 196 patches x 4,096 rows is a 25 MB distance matrix.
SEARCH_ROWS = 8


def guided_features(patches: np.ndarray, distances: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """One image's descriptor [2 D + k + 2] from its patches [P, D] and their distances [P] to the good bank.

    The K most anomalous patches' mean says what the defect looks like; the
    softmax-weighted mean (temperature: the distances' spread) says it
    without a hard cut-off; the K largest distances and the mean and spread
    of all say how unlike a good part it is.
    """
    top = np.argpartition(-distances, k - 1)[:k] if len(distances) > k else np.arange(len(distances))
    w = np.exp((distances - distances.max()) / (distances.std() + 1e-6))
    w /= w.sum()
    return np.concatenate([
        patches[top].mean(0), w @ patches, np.sort(distances[top])[-k:], [distances.mean(), distances.std()],
    ]).astype(np.float32)


class GoodBank:
    """Patches of a task's good images [M, D] on maps `inputs`, each map divided by its scale (held in float16, as saved).

    With `spread` (each row's local spread of good patches, as an anomaly
    bank keeps it: `edgetl.anomaly.bank.local_spread`) distances are in
    units of spread^spread_power; heads saved before 2026-12-04 have none
    and keep plain distances, as they were fitted.
    """

    def __init__(self, inputs: tuple[str, ...], scales: np.ndarray, bank: np.ndarray, k: int = TOP_K, spread: np.ndarray | None = None, spread_power: float = 0.0):
        self.inputs = tuple(inputs)
        self.scales = np.asarray(scales, np.float32)
        # Kept as it is saved, in float16 (the job rounds its patches so before fitting): the search
        # holds its own float32 rows, so a float32 copy here would be 7 MB more per task for nothing.
        self.bank = np.ascontiguousarray(bank, np.float16)
        self.k = int(k)
        self.spread, self.spread_power, self.row_weights = spread_weights(spread, spread_power, len(self.bank))
        self.search = BankSearch(self.bank.astype(np.float32), self.row_weights)

    @property
    def descriptor_size(self) -> int:
        """A descriptor's length (guided_features): two patch means, the K largest distances, their mean and spread."""
        return 2 * self.bank.shape[1] + self.k + 2

    def describe(self, maps: Mapping[str, np.ndarray], excluded: np.ndarray | None = None) -> np.ndarray:
        """One image's guided descriptor from its maps ([C, h, w] each); `excluded` bank rows are skipped (leave one out)."""
        return self.describe_views([maps], excluded)[0]

    def describe_views(self, views: list[Mapping[str, np.ndarray]], excluded: np.ndarray | None = None) -> np.ndarray:
        """Descriptors [V, D'] of several views of one image (or of several images): one search against the bank for all of them.

        One product of all their patches with the bank costs less than one per
        view (BLAS keeps its blocks busy longer); `excluded` applies to all.
        """
        patches = [patch_features(maps, self.inputs, self.scales)[0] for maps in views]
        distances = self.search(np.concatenate(patches), excluded)
        per_view = np.split(distances, np.cumsum([len(p) for p in patches])[:-1])
        return np.stack([guided_features(p, d, self.k) for p, d in zip(patches, per_view)])

    def arrays(self) -> dict[str, np.ndarray]:
        spread = {} if self.spread is None else {"spread": self.spread, "spread_power": np.array(self.spread_power)}
        return {"inputs": np.array(self.inputs), "scales": self.scales, "bank": self.bank, "k": np.array(self.k), **spread}


class GuidedHead(LinearHead):
    """A linear classifier on guided descriptors: describe (bank search) -> standardise -> linear -> softmax."""

    def __init__(self, good: GoodBank, mean: np.ndarray, std: np.ndarray, weight: np.ndarray, bias: np.ndarray):
        super().__init__(good.inputs, mean, std, weight, bias)
        self.good = good

    def pool(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(features[self.inputs[0]])
        if not n:
            return np.zeros((0, len(self.mean)), np.float32)
        # An image's views (or a batch) are searched SEARCH_ROWS at a time: one product each, its distance matrix a few MB.
        rows = [{name: features[name][i] for name in self.inputs} for i in range(n)]
        return np.concatenate([self.good.describe_views(rows[i : i + SEARCH_ROWS]) for i in range(0, n, SEARCH_ROWS)])


def head_from_arrays(arrays: Mapping[str, np.ndarray], inputs: tuple[str, ...] | None = None) -> LinearHead:
    """A head from what a trainer returned (and head.npz holds): guided when there is a bank, plain otherwise (then `inputs` names its maps)."""
    if "bank" in arrays:
        spread = arrays.get("spread")
        good = GoodBank(
            tuple(str(n) for n in arrays["inputs"]), arrays["scales"], arrays["bank"], int(arrays["k"]),
            spread, float(arrays["spread_power"]) if "spread_power" in arrays else 0.0,
        )
        return GuidedHead(good, arrays["mean"], arrays["std"], arrays["weight"], arrays["bias"])
    return LinearHead(tuple(inputs if inputs is not None else (str(n) for n in arrays["inputs"])), arrays["mean"], arrays["std"], arrays["weight"], arrays["bias"])


def load_head(path: Path) -> LinearHead:
    """A head file: guided (it holds a good bank) or plain. Raises ValueError for a bank that cannot serve."""
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    if "bank" in arrays:
        bank = arrays["bank"]
        if bank.ndim != 2 or not len(bank) or not np.all(np.isfinite(bank)):
            raise ValueError(f"the good bank holds {bank.shape} patches, or non-finite ones")
    return head_from_arrays(arrays)
