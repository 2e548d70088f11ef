"""The inference engine: task -> decode -> preprocess -> backbone -> head -> prediction.

This is the serving path as a plain async API, with no gRPC in it; the
servicers are thin wrappers around it. Adapters are held per task in a dict
whose entries are replaced whole, so a swap is one atomic assignment and a
request in flight keeps the adapter it started with.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from edgetl import metrics
from edgetl.anomaly.model import AnomalyAnswer, AnomalyModel
from edgetl.errors import DeadlineExceeded, EdgetlError, InvalidInput, NotFound, NotReady, Unavailable
from edgetl.runtime.batcher import BackboneResult, MicroBatcher
from edgetl.runtime.heads import Head, probabilities_and_embedding
from edgetl.runtime.preprocess import ImageInput, decode
from edgetl.runtime.stats import RecentStats
from edgetl.runtime.views import stack_views, views_of
from edgetl.runtime.workers import WorkerThreads
from edgetl.tasks.store import Task, TaskStore

DEFAULT_TOP_K = 5
#: Tasks one ClassifyTasks request may name: a camera station's answers, not a sweep over the server.
MAX_TASKS_PER_REQUEST = 16


@dataclass(frozen=True)
class ActiveAdapter:
    """What a task serves with right now: a head, and the backbone it runs on
    when that is its own (a LoRA adapter) rather than the task's shared one."""

    version: str
    head: Head
    batcher: MicroBatcher | None = None
    #: The adapter's drift reference (edgetl.monitor), when it has one.
    drift: object | None = None
    #: Backbone outputs to fetch, when more than the head reads (a LoRA model's embedding).
    outputs: tuple[str, ...] = ()
    #: Views each image is answered from (edgetl.runtime.views), probabilities averaged; 1: the image as sent.
    views: int = 1

    @property
    def fetch(self) -> tuple[str, ...]:
        return self.outputs or self.head.inputs


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
    #: The task's drift state after this image: "ok", "warning" or "drifted".
    drift: str = "ok"
    #: An anomaly task's answer (edgetl.anomaly.model.AnomalyAnswer): score, threshold, verdict, map.
    anomaly: AnomalyAnswer | None = None
    #: (height, width) the backbone was fed: the size an anomaly heatmap is drawn at.
    input_size: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class HeadAnswer:
    """What a task's adapter made of one image's backbone outputs: computed in the worker thread that ran the backbone."""

    probs: np.ndarray  # [num_classes], in class order
    embedding: np.ndarray | None  # what drift monitoring watches (None: the adapter has none)
    anomaly: AnomalyAnswer | None
    top: list[tuple[str, float]]
    head_ms: float


def top_classes(probs: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The `k` most probable classes as (index, probability), best first; ties: the lower index first.

    Runs on the event loop for every answer, so it makes few numpy calls and
    uses the array's methods (np.argpartition and np.argsort are Python-level
    wrappers): one partition finds the k-th best score, every class at or
    above it is a candidate (more than k only on a tie there), and the few
    candidates are sorted in Python. With one class asked for, one argmax.
    """
    n = len(probs)
    if k == 1 or n == 1:
        best = int(probs.argmax())  # the first of equals
        return [(best, float(probs[best]))]
    if k < n:
        candidates = (probs >= probs[probs.argpartition(n - k)[n - k]]).nonzero()[0]
    if k >= n or len(candidates) < k:  # (fewer only with NaN scores: a broken model still gets an answer)
        candidates = np.arange(n)
    indices, scores = candidates.tolist(), probs[candidates].tolist()
    order = sorted(range(len(indices)), key=lambda j: (-scores[j], indices[j]))
    return [(indices[j], scores[j]) for j in order[:k]]


class InferenceEngine:
    """Classifies images for tasks. Create once per server; call from the event loop."""

    def __init__(
        self,
        tasks: TaskStore,
        batchers: dict[str, MicroBatcher],
        max_pixels: int,
        worker_threads: int = 4,
        max_queue: int = 256,
        gather: int = 1,
    ):
        """`gather`: how many waiting requests one worker takes at once, so that their images share a backbone
        batch (1: one at a time); the server passes `batcher.gather_for` its backbone."""
        self.tasks = tasks
        self.batchers = batchers  # backbone name -> its batcher
        self.max_pixels = max_pixels
        self.max_queue = max_queue
        self.builtin_tasks: dict[str, Task] = {}
        self.adapters: dict[str, ActiveAdapter] = {}
        # Workers decode, preprocess and (leader/follower) run the backbone:
        # one thread hop per request, and the event loop only awaits. A worker
        # takes up to `gather` waiting requests and queues all their images
        # before it waits, so even one worker batches under load.
        self.worker_threads = max(1, worker_threads)
        self._workers = WorkerThreads(self.worker_threads, "infer", gather=gather)
        self._in_flight = 0
        self._lock = threading.Lock()
        self.stats = RecentStats()
        #: Drift monitoring (edgetl.monitor.DriftMonitor), set by the server; None: not watched.
        self.monitor = None
        metrics.IN_FLIGHT.set_function(lambda: self._in_flight)

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

    async def classify(self, task_name: str, image: ImageInput, top_k: int = DEFAULT_TOP_K, deadline: float | None = None) -> Prediction:
        """Classify one image. `deadline` (time.monotonic()): past it, the work is skipped."""
        received = time.perf_counter()
        try:
            task, adapter, batcher = self._resolve(task_name)
            return await self._classify(task, adapter, batcher, image, top_k, deadline, received)
        except EdgetlError as exc:
            self._count_failure(task_name, exc, 1)
            raise

    async def look_again(self, task_name: str, image: ImageInput) -> Prediction:
        """An image the line already sent (a review item) answered by the task's active adapter, for a person to look at.

        Not a prediction on the line: it counts in no metric, feeds no drift
        monitor, and the caller captures nothing.
        """
        task, adapter, batcher = self._resolve(task_name)
        decode_ms, results, head = await self._admitted(self._run, image, task, adapter, batcher, DEFAULT_TOP_K, None)
        return self._answer(task, adapter, batcher, decode_ms, results, head, time.perf_counter(), observe=False)

    async def classify_batch(self, task_name: str, images: list[ImageInput], deadline: float | None = None) -> tuple[Task, list[Prediction]]:
        """Classify several images with one adapter (read once, so a swap cannot split the batch)."""
        received = time.perf_counter()
        try:
            task, adapter, batcher = self._resolve(task_name)
        except EdgetlError as exc:
            self._count_failure(task_name, exc, len(images))
            raise
        if len(images) == 1:  # a camera's one frame: no gather (a task and a loop turn more per call)
            try:
                return task, [await self._classify(task, adapter, batcher, images[0], 1, deadline, received)]
            except EdgetlError as exc:
                self._count_failure(task.name, exc, 1)
                raise
        # Every image runs to its end, so the failure count is exact; the first error is raised.
        results = await asyncio.gather(
            *(self._classify(task, adapter, batcher, image, 1, deadline, received) for image in images), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for exc in failures:
            if isinstance(exc, EdgetlError):
                self._count_failure(task.name, exc, 1)
        if failures:
            raise failures[0]
        return task, results

    def _count_failure(self, task_name: str, exc: EdgetlError, images: int) -> None:
        known = task_name in self.builtin_tasks or task_name in self.adapters or self.tasks.get(task_name) is not None
        metrics.IMAGE_FAILURES.labels(task_name if known else "(unknown)", exc.code).inc(images)
        if known:
            for _ in range(images):
                self.stats.failure(task_name)

    def _resolve(self, task_name: str) -> tuple[Task, ActiveAdapter, MicroBatcher]:
        task = self.get_task(task_name)
        adapter = self.adapters.get(task.name)  # read once: a swap mid-request does not affect us
        if adapter is None:
            raise NotReady(
                f"task {task.name!r} has no active adapter yet; label images and train one "
                f"(edgetl label import --task {task.name} DIR; edgetl train --task {task.name} --method head)"
            )
        batcher = adapter.batcher or self.batchers.get(task.backbone)
        if batcher is None:
            raise NotReady(f"backbone {task.backbone!r} of task {task.name!r} is not loaded in this server")
        return task, adapter, batcher

    async def classify_tasks(
        self, task_names: list[str], image: ImageInput, top_k: int = DEFAULT_TOP_K, deadline: float | None = None
    ) -> tuple[list[Prediction], int]:
        """One image, several tasks' answers (in the order asked), and how many backbone runs they took (a view is a run).

        The image is decoded once; tasks whose adapters run on the same
        backbone session (every head and anomaly adapter of one backbone)
        share one run of it, fetching the union of the outputs they read. A
        LoRA adapter has its own backbone, so it costs its own run. Every
        task is resolved before anything is computed: an unknown or untrained
        task fails the whole request, and nothing is half answered.
        """
        received = time.perf_counter()
        if not task_names:
            raise InvalidInput("the request names no task; set tasks to one or more task names")
        if len(task_names) > MAX_TASKS_PER_REQUEST:
            raise InvalidInput(f"the request names {len(task_names)} tasks; at most {MAX_TASKS_PER_REQUEST} per image")
        twice = sorted({n for n in task_names if task_names.count(n) > 1})
        if twice:
            raise InvalidInput(f"task {twice[0]!r} is named more than once in the request")
        resolved = []
        for name in task_names:
            try:
                resolved.append(self._resolve(name))
            except EdgetlError as exc:
                self._count_failure(name, exc, 1)
                raise
        # One backbone run per session (per view), fetching what every task on it reads;
        # views nest, so a task answered from fewer views reads the first of them.
        runs: dict[int, tuple[MicroBatcher, set[str], list[int]]] = {}
        for _, adapter, batcher in resolved:
            _, outputs, views = runs.setdefault(id(batcher), (batcher, set(), [1]))
            outputs.update(adapter.fetch)
            views[0] = max(views[0], adapter.views)
        try:
            plan = [(b, tuple(sorted(o)), v[0]) for b, o, v in runs.values()]
            decode_ms, results, heads = await self._admitted(self._run_many, image, plan, resolved, top_k, deadline)
        except EdgetlError as exc:
            for name in task_names:
                self._count_failure(name, exc, 1)
            raise
        by_batcher = dict(zip(runs, results))
        predictions = [
            self._answer(task, adapter, batcher, decode_ms, by_batcher[id(batcher)], head, received)
            for (task, adapter, batcher), head in zip(resolved, heads)
        ]
        return predictions, sum(views for _, _, views in plan)

    async def _admitted(self, work, *args):
        """`work(*args)`, staged work (a generator function), in a worker thread, if the queue has room (else Unavailable)."""
        with self._lock:
            if self._in_flight >= self.max_queue:
                raise Unavailable(f"{self._in_flight} images are waiting (limit {self.max_queue}); retry shortly")
            self._in_flight += 1
        try:
            return await self._workers.run_staged(work, *args)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _classify(
        self, task: Task, adapter: ActiveAdapter, batcher: MicroBatcher, image: ImageInput, top_k: int, deadline: float | None, received: float
    ) -> Prediction:
        decode_ms, results, head = await self._admitted(self._run, image, task, adapter, batcher, top_k, deadline)
        return self._answer(task, adapter, batcher, decode_ms, results, head, received)

    @staticmethod
    def _head(task: Task, adapter: ActiveAdapter, results: list[BackboneResult], top_k: int) -> HeadAnswer:
        """In the worker thread, after the backbone: the adapter's probabilities (averaged over its views) and top classes.

        Here rather than on the event loop: an anomaly or guided head searches
        its bank (milliseconds of BLAS, which releases the GIL), and even a
        plain head's softmax and top-k cost less in the worker that waited for
        the backbone than on the loop (BENCHMARKS.md, "Against the servers a
        plant could pick instead"). Heads only read their arrays, so any number
        of workers may answer at once.
        """
        started = time.perf_counter()
        anomaly = None
        if isinstance(adapter.head, AnomalyModel):
            anomaly = adapter.head.answer(results[0].features)
            probs, embedding = adapter.head.probabilities(anomaly.score), None
        else:
            probs, embedding = probabilities_and_embedding(adapter.head, stack_views(results, adapter.views))
            # Averaged over the views; drift watches the image as sent, as its reference was fitted.
            probs = probs[0] if adapter.views == 1 else probs.mean(axis=0)
            embedding = None if embedding is None else embedding[0]
        if len(probs) < len(task.class_names):
            # Trained before a class was added (classes are only appended): it
            # cannot know the new class, so it answers 0 for it.
            probs = np.concatenate([probs, np.zeros(len(task.class_names) - len(probs), probs.dtype)])
        top = [(task.class_names[i], score) for i, score in top_classes(probs, top_k or DEFAULT_TOP_K)]
        return HeadAnswer(probs, embedding, anomaly, top, (time.perf_counter() - started) * 1000)

    def _answer(
        self, task: Task, adapter: ActiveAdapter, batcher: MicroBatcher, decode_ms: float, results: list[BackboneResult], head: HeadAnswer,
        received: float, observe: bool = True,
    ) -> Prediction:
        """On the event loop: the head's answer (one backbone result per view) as a Prediction, with drift, timing and
        metrics (`observe=False`: no drift, no metrics)."""
        probs = head.probs
        drift = "ok"
        if observe and self.monitor is not None and task.name not in self.builtin_tasks:
            drift = self.monitor.observe(task.name, adapter.version, adapter.drift, len(task.class_names), head.embedding, probs)
        prediction = Prediction(
            task=task.name,
            label=head.top[0][0],
            score=head.top[0][1],
            scores=probs,
            top=head.top,
            adapter_version=adapter.version,
            decode_ms=decode_ms,
            queue_ms=results[0].queue_ms,
            # From the first view's batch starting to the last one's ending.
            inference_ms=max(r.queue_ms + r.inference_ms for r in results[: adapter.views]) - results[0].queue_ms + head.head_ms,
            total_ms=(time.perf_counter() - received) * 1000,
            drift=drift,
            anomaly=head.anomaly,
            input_size=tuple(batcher.session.input_size) if head.anomaly is not None else (0, 0),
        )
        if observe:
            metrics.PredictionMetrics.of(task.name, adapter.version).observe(decode_ms, prediction.queue_ms, prediction.inference_ms, prediction.total_ms)
            self.stats.record(task.name, prediction.total_ms)
        return prediction

    def _run(
        self, image: ImageInput, task: Task, adapter: ActiveAdapter, batcher: MicroBatcher, top_k: int, deadline: float | None
    ) -> Generator[Callable[[], bool], None, tuple[float, list[BackboneResult], HeadAnswer]]:
        """Staged, in a worker thread: decode, preprocess and queue each view for the backbone (unless the caller
        has given up); then, after the other requests in hand have queued theirs, the results and the head."""
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("the request's deadline passed while it was queued; it was not computed")
        started = time.perf_counter()
        tensor = batcher.session.preprocess(decode(image, self.max_pixels))
        decode_ms = (time.perf_counter() - started) * 1000
        queued = batcher.submit(views_of(tensor, adapter.views), adapter.fetch, deadline)
        yield lambda: MicroBatcher.done(queued)
        results = batcher.collect(queued)
        return decode_ms, results, self._head(task, adapter, results, top_k)

    def _run_many(
        self, image: ImageInput, runs: list[tuple[MicroBatcher, tuple[str, ...], int]], resolved: list[tuple[Task, ActiveAdapter, MicroBatcher]],
        top_k: int, deadline: float | None,
    ) -> Generator[Callable[[], bool], None, tuple[float, list[list[BackboneResult]], list[HeadAnswer]]]:
        """Staged, in a worker thread: decode once, queue each backbone's runs, one per view (preprocessed for its
        session); then, after the other requests in hand have queued theirs, the results and every task's head."""
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("the request's deadline passed while it was queued; it was not computed")
        started = time.perf_counter()
        decoded = decode(image, self.max_pixels)
        queued = [batcher.submit(views_of(batcher.session.preprocess(decoded), views), outputs, deadline) for batcher, outputs, views in runs]
        decode_ms = (time.perf_counter() - started) * 1000
        yield lambda: all(MicroBatcher.done(slots) for slots in queued)
        results = [batcher.collect(slots) for (batcher, _, _), slots in zip(runs, queued)]
        by_batcher = {id(batcher): result for (batcher, _, _), result in zip(runs, results)}
        return decode_ms, results, [self._head(task, adapter, by_batcher[id(batcher)], top_k) for task, adapter, batcher in resolved]

    def close(self) -> None:
        self._workers.shutdown()
