"""The inference engine: task -> decode -> preprocess -> backbone -> head -> prediction.

This is the serving path as a plain async API, with no gRPC in it; the
servicers are thin wrappers around it. Adapters are held per task in a dict
whose entries are replaced whole, so a swap is one atomic assignment and a
request in flight keeps the adapter it started with.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edgetl.errors import NotFound, NotReady
from edgetl.runtime.batcher import MicroBatcher
from edgetl.runtime.heads import Head
from edgetl.runtime.preprocess import ImageInput, decode
from edgetl.tasks.store import Task, TaskStore

DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class ActiveAdapter:
    """What a task serves with right now."""

    version: str
    head: Head


@dataclass(frozen=True)
class Prediction:
    task: str
    label: str
    score: float
    scores: np.ndarray  # [num_classes], in class order
    top: list[tuple[str, float]]
    adapter_version: str
    decode_ms: float
    queue_ms: float
    inference_ms: float
    total_ms: float


class InferenceEngine:
    """Classifies images for tasks. Create once per server; call from the event loop."""

    def __init__(self, tasks: TaskStore, batchers: dict[str, MicroBatcher], max_pixels: int, decode_threads: int = 2):
        self.tasks = tasks
        self.batchers = batchers  # backbone name -> its batcher
        self.max_pixels = max_pixels
        self.builtin_tasks: dict[str, Task] = {}
        self.adapters: dict[str, ActiveAdapter] = {}
        self._decode_pool = ThreadPoolExecutor(max(1, decode_threads), thread_name_prefix="decode")

    def add_builtin_task(self, task: Task, adapter: ActiveAdapter) -> None:
        self.builtin_tasks[task.name] = task
        self.adapters[task.name] = adapter

    def get_task(self, name: str) -> Task:
        task = self.builtin_tasks.get(name) or self.tasks.get(name)
        if task is None:
            known = ", ".join(t.name for t in self.list_tasks()) or "none"
            raise NotFound(f"unknown task {name!r}; known tasks: {known}")
        return task

    def list_tasks(self) -> list[Task]:
        return sorted([*self.builtin_tasks.values(), *self.tasks.list()], key=lambda t: t.name)

    async def classify(self, task_name: str, image: ImageInput, top_k: int = DEFAULT_TOP_K) -> Prediction:
        received = time.perf_counter()
        task = self.get_task(task_name)
        adapter = self.adapters.get(task.name)  # read once: a swap mid-request does not affect us
        if adapter is None:
            raise NotReady(
                f"task {task.name!r} has no active adapter yet; label images and train one "
                f"(edgetl label import --task {task.name} DIR; edgetl train --task {task.name} --method head)"
            )
        batcher = self.batchers.get(task.backbone)
        if batcher is None:
            raise NotReady(f"backbone {task.backbone!r} of task {task.name!r} is not loaded in this server")
        loop = asyncio.get_running_loop()
        tensor = await loop.run_in_executor(self._decode_pool, self._prepare, image, batcher)
        decoded = time.perf_counter()
        result = await batcher.infer(tensor, adapter.head.inputs)
        head_started = time.perf_counter()
        probs = adapter.head({k: v[None] for k, v in result.features.items()})[0]
        head_ms = (time.perf_counter() - head_started) * 1000
        k = min(len(probs), top_k or DEFAULT_TOP_K)
        best = np.argpartition(-probs, k - 1)[:k] if k < len(probs) else np.arange(len(probs))
        best = best[np.argsort(-probs[best], kind="stable")]
        top = [(task.class_names[i], float(probs[i])) for i in best]
        return Prediction(
            task=task.name,
            label=top[0][0],
            score=top[0][1],
            scores=probs,
            top=top,
            adapter_version=adapter.version,
            decode_ms=(decoded - received) * 1000,
            queue_ms=result.queue_ms,
            inference_ms=result.inference_ms + head_ms,
            total_ms=(time.perf_counter() - received) * 1000,
        )

    def _prepare(self, image: ImageInput, batcher: MicroBatcher) -> np.ndarray:
        return batcher.session.preprocess(decode(image, self.max_pixels))

    def close(self) -> None:
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
        for batcher in self.batchers.values():
            batcher.close()
