"""Capture: hand classified images to the review store without slowing the line.

`offer` runs on the serving path after each answer: it asks the task's
policy for reasons (a few comparisons and a random draw) and, only when
there is one, puts the image and its prediction on a bounded queue. It never
waits: when the queue is full the image is dropped and counted. A writer
thread takes items off the queue, applies the rate caps, encodes raw camera
pixels losslessly (PNG), and stores them (file first, then row; the disk cap
evicts the oldest unreviewed items). On a graceful stop the queue is drained.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Container
from dataclasses import dataclass

import cv2

from edgetl import metrics
from edgetl.errors import EdgetlError
from edgetl.monitor.monitor import DRIFTED
from edgetl.review.policy import CapturePolicies, CapturePolicy, margin_of
from edgetl.review.store import Capture, Item, ReviewStore
from edgetl.runtime.imageheader import read_header
from edgetl.runtime.preprocess import EncodedImage, ImageInput, decode
from edgetl.writer import WriterThread

log = logging.getLogger(__name__)

DAY_S = 86_400.0


@dataclass(frozen=True)
class _Offered:
    task: str
    image: ImageInput
    adapter_version: str
    predicted: str
    score: float
    margin: float
    scores: list[float]
    reasons: list[str]
    caller: str
    request_id: str
    at: float


class RateWindow:
    """Capture times of one task over the last day, to enforce per-minute/hour/day caps."""

    def __init__(self, times: list[float] | None = None):
        self.times = list(times or [])

    def allows(self, policy: CapturePolicy, now: float) -> bool:
        if self.times and self.times[0] < now - DAY_S:
            del self.times[: bisect.bisect_left(self.times, now - DAY_S)]
        n = len(self.times)
        for window, cap in ((60.0, policy.per_minute), (3600.0, policy.per_hour), (DAY_S, policy.per_day)):
            if n - bisect.bisect_left(self.times, now - window) >= cap:
                return False
        return True

    def add(self, at: float) -> None:
        self.times.append(at)


class Capturer:
    """Decides what to keep for review (`offer`) and stores it (a writer thread).

    Args:
        store: where items go.
        policies: each task's capture policy.
        skip: task names never captured (a backbone's built-in task cannot be
            labelled, so reviewing it would lead nowhere).
        max_pixels: the server's pixel cap, for decoding raw frames.
        queue_size: items waiting for the writer; past it, offers are dropped.
        drift_rate: while a task's drift state is "drifted", the share of its
            images kept with the reason "drifted".
    """

    def __init__(
        self, store: ReviewStore, policies: CapturePolicies, skip: Container[str], max_pixels: int, queue_size: int = 256, drift_rate: float = 0.05
    ):
        self.store = store
        self.drift_rate = drift_rate
        self.policies = policies
        self.skip = skip
        self.max_pixels = max_pixels
        now = time.time()
        self._windows = {task: RateWindow(times) for task, times in store.captured_since(now - DAY_S).items()}
        self._writer: WriterThread[_Offered] = WriterThread("review-capture", self._write, self._failed, maxsize=max(1, queue_size))

    # -- the serving path -----------------------------------------------------
    def offer(self, prediction, image: ImageInput, flagged: bool = False, caller: str = "", request_id: str = "") -> list[str]:
        """Queue `image` for review if the task's policy wants it; returns the reasons (empty: not kept)."""
        task = prediction.task
        if task in self.skip:
            return []
        top = prediction.top
        margin = top[0][1] - top[1][1] if len(top) >= 2 else margin_of(prediction.scores)
        policy = self.policies.get(task)
        draw = self.policies.draw()
        reasons = policy.reasons(prediction.score, margin, flagged, draw)
        if getattr(prediction, "drift", "") == DRIFTED and policy.enabled and draw < self.drift_rate:
            # While the line has drifted, a share of its images goes to the operator: what the new normal looks like.
            reasons.append(DRIFTED)
        if not reasons:
            return reasons
        offered = _Offered(
            task, image, prediction.adapter_version, prediction.label, prediction.score, margin, prediction.scores.tolist(), reasons, caller,
            request_id, time.time(),
        )
        if not self._writer.offer(offered):
            metrics.REVIEW_DROPPED.labels(task, "queue_full").inc()
        return reasons

    # -- the writer thread ----------------------------------------------------
    def _failed(self, offered: _Offered, exc: Exception) -> None:
        log.error("review capture of a %s image failed; dropped", offered.task, exc_info=exc)
        metrics.REVIEW_DROPPED.labels(offered.task, "error").inc()

    def _write(self, offered: _Offered) -> None:
        policy = self.policies.get(offered.task)
        window = self._windows.setdefault(offered.task, RateWindow())
        if not window.allows(policy, offered.at):
            metrics.REVIEW_DROPPED.labels(offered.task, "rate_limit").inc()
            return
        data, fmt, width, height = self._file_of(offered.image)
        capture = Capture(
            offered.task, data, fmt, width, height, offered.adapter_version, offered.predicted, offered.score, offered.margin,
            offered.scores, offered.reasons, offered.caller, offered.request_id, offered.at,
        )
        try:
            _, evicted = self.store.add(capture, policy.disk_bytes)
        except EdgetlError as exc:
            log.warning("review capture for task %s dropped: %s", offered.task, exc)
            metrics.REVIEW_DROPPED.labels(offered.task, "too_large").inc()
            return
        window.add(offered.at)
        for reason in offered.reasons:
            metrics.REVIEW_CAPTURED.labels(offered.task, reason).inc()
        self._count_evicted(offered.task, evicted)
        metrics.REVIEW_PENDING.labels(offered.task).set(self.store.pending(offered.task))

    def _file_of(self, image: ImageInput) -> tuple[bytes, str, int, int]:
        """The image as a file: encoded images exactly as received, raw pixels as PNG (lossless)."""
        if isinstance(image, EncodedImage):
            header = read_header(image.data)
            return image.data, header.format, header.width, header.height
        bgr = decode(image, self.max_pixels)
        ok, png = cv2.imencode(".png", bgr)
        if not ok:
            raise RuntimeError("PNG encoding of a raw frame failed")
        return png.tobytes(), "png", bgr.shape[1], bgr.shape[0]

    @staticmethod
    def _count_evicted(task: str, evicted: list[Item]) -> None:
        if evicted:
            metrics.REVIEW_EVICTED.labels(task).inc(len(evicted))
            log.info("task %s: review disk cap reached; %d oldest unreviewed item(s) removed", task, len(evicted))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything offered so far is written (tests, shutdown). True if it was."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        self._writer.close(timeout)
