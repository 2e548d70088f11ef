"""Hot swap: load -> validate -> warm up -> atomic replace, per task, with rollback.

The swap itself is one dict assignment in the engine; a request reads its
task's adapter once when it starts, so requests in flight finish on the old
adapter and new ones get the new one, and none fails. Anything that goes
wrong before the swap (missing or damaged files, a probe mismatch) raises
and leaves the old adapter serving. The activation is recorded after the
swap: after a crash in between, the restart restores the previous one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from pathlib import Path

from edgetl import metrics
from edgetl.adapt.versions import AdapterVersion, AdapterVersions
from edgetl.errors import NotReady
from edgetl.runtime.adapters import LoadedAdapter, load_adapter
from edgetl.runtime.engine import ActiveAdapter, InferenceEngine
from edgetl.settings import Settings

log = logging.getLogger(__name__)


def _check_classes(task_classes, adapter_classes, adapter: AdapterVersion) -> None:
    """An adapter's classes must be the task's first classes, in order (classes are only appended)."""
    if adapter_classes and tuple(adapter_classes) != tuple(task_classes[: len(adapter_classes)]):
        raise NotReady(
            f"adapter {adapter.version} of task {adapter.task!r} was trained for classes {list(adapter_classes)}, "
            f"which do not match the task's {list(task_classes)}"
        )


class Activator:
    def __init__(self, engine: InferenceEngine, versions: AdapterVersions, settings: Settings, trt_cache: Path):
        self.engine = engine
        self.versions = versions
        self.settings = settings
        self.trt_cache = trt_cache
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def activate(self, task: str, version: int | str, reason: str = "activate", record: bool = True, loaded: LoadedAdapter | None = None) -> AdapterVersion:
        """`loaded`: the version as its producer holds it in memory, having just written and
        hashed its files (online enrolment); loading it back from disk would only repeat that."""
        adapter = self.versions.get(task, version)
        async with self._locks[task]:
            if loaded is None:
                loaded = await asyncio.to_thread(load_adapter, adapter.path, self.engine.batchers, self.settings, self.trt_cache)
            _check_classes(self.engine.get_task(task).class_names, loaded.manifest.get("class_names"), adapter)
            self.engine.adapters[task] = ActiveAdapter(str(adapter.version), loaded.head, loaded.batcher, loaded.drift, loaded.outputs, loaded.views)
            if record:
                await asyncio.to_thread(self.versions.record_activation, task, adapter.version, reason)
            metrics.adapter_activated(task, str(adapter.version), reason)
        log.info("task %s now serves adapter %s (%s)", task, adapter.version, reason)
        return adapter

    async def unload(self, task: str) -> None:
        """Stop serving the task's adapter: its requests answer FAILED_PRECONDITION until one is activated."""
        async with self._locks[task]:
            self.engine.adapters.pop(task, None)
            await asyncio.to_thread(self.versions.record_unload, task)
            metrics.adapter_activated(task, None, "unload")
        log.info("task %s unloaded: no adapter serves it", task)

    async def rollback(self, task: str) -> AdapterVersion:
        previous = await asyncio.to_thread(self.versions.previous_version, task)
        return await self.activate(task, previous, reason="rollback")

    async def restore(self) -> None:
        """At start-up: every task's active adapter, as recorded."""
        for task, version in (await asyncio.to_thread(self.versions.tasks_with_active_adapters)).items():
            try:
                await self.activate(task, version, reason="restore", record=False)
            except Exception as exc:  # noqa: BLE001 - one broken task must not stop the server
                log.error("task %s: active adapter %s could not be restored (%s); the task answers FAILED_PRECONDITION", task, version, exc)
