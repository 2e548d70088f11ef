"""Training jobs: spawned worker processes, their progress, their results.

One job per task at a time, at most `max_jobs` running (others wait,
`queued`). A job's worker reports JSON lines; every event is kept, so a
watcher that connects late sees the whole history, then live events. When
the worker succeeds, its temp directory becomes a new adapter version, the
evaluation gate decides, and a passing adapter is hot-swapped in. A worker
that fails, crashes or is cancelled leaves no version, only a failed job
with the reason. Jobs left `running` by a server that died are marked
failed at the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator

from edgetl import metrics
from edgetl.adapt.activation import Activator
from edgetl.adapt.gate import gate
from edgetl.adapt.lora_targets import check_lora_min_stride
from edgetl.adapt.quantize import ANOMALY_PRECISION, check_precision
from edgetl.adapt.trainer_guided import check_pooling, good_class
from edgetl.adapt.versions import AdapterVersions
from edgetl.db import connect
from edgetl.errors import InvalidInput, NotFound, NotReady
from edgetl.runtime.views import check_serve_views
from edgetl.settings import Settings
from edgetl.tasks.store import Task

log = logging.getLogger(__name__)

METHODS = ("head", "lora", "auto", "anomaly")
FINISHED = ("succeeded", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT PRIMARY KEY,
    task        TEXT NOT NULL,
    method      TEXT NOT NULL,
    options     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    finished_at REAL,
    result      TEXT NOT NULL DEFAULT '{}'   -- JSON: error, version, activated, gate, metrics...
);
"""


@dataclass
class Job:
    id: str
    task: str
    method: str
    options: dict
    force: bool = False
    compare_scratch: bool = False
    state: str = "queued"
    created_at: float = field(default_factory=time.time)
    finished_at: float = 0.0
    result: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    process: asyncio.subprocess.Process | None = None
    cancelled: bool = False

    def add_event(self, event: dict) -> None:
        event = {"elapsed_s": time.time() - self.created_at, **event} if "elapsed_s" not in event else event
        self.events.append({"job_id": self.id, **event})
        self.changed.set()
        self.changed = asyncio.Event()


def _kill_if_alive(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()


class JobManager:
    def __init__(self, settings: Settings, db_path, versions: AdapterVersions, activator: Activator, max_jobs: int = 1):
        self.settings = settings
        self.versions = versions
        self.activator = activator
        self._db = connect(db_path)
        self._db.executescript(SCHEMA)
        self._jobs: dict[str, Job] = {}
        self._slots = asyncio.Semaphore(max_jobs)
        self._tasks: set[asyncio.Task] = set()
        metrics.JOBS_RUNNING.set_function(lambda: sum(j.state not in FINISHED for j in list(self._jobs.values())))

    def recover(self) -> None:
        """At start-up: jobs a dead server left running are failed; their temp dirs go."""
        cur = self._db.execute(
            "UPDATE jobs SET state = 'failed', finished_at = ?, result = json_set(result, '$.error', 'the server stopped during the job') "
            "WHERE state IN ('queued', 'running')",
            (time.time(),),
        )
        if cur.rowcount:
            log.warning("%d training job(s) were interrupted by a server stop; marked failed", cur.rowcount)
        self.versions.clean_temp_dirs()

    async def start(self, task: Task, method: str, options: dict, force: bool = False, compare_scratch: bool = False) -> Job:
        if task.builtin:
            raise InvalidInput(f"task {task.name!r} is built in and cannot be trained; create a task of your own")
        if method not in METHODS:
            raise InvalidInput(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        if task.kind == "anomaly":
            if method not in ("anomaly", "auto"):
                raise InvalidInput(f"task {task.name!r} is an anomaly task: train it with --method anomaly (from good images), not {method!r}")
            method = "anomaly"
        elif method == "anomaly":
            raise InvalidInput(f"task {task.name!r} is a classify task; --method anomaly needs a task created with --kind anomaly")
        if options.get("precision") is not None:
            check_precision(options["precision"])
            if method == "anomaly" and options["precision"] != "fp32":
                raise InvalidInput(ANOMALY_PRECISION)
        if options.get("pooling") is not None:
            check_pooling(options["pooling"])
        if options.get("serve_views") is not None:
            check_serve_views(options["serve_views"], method)
        if options.get("lora_min_stride") is not None:
            check_lora_min_stride(options["lora_min_stride"])
        good_class(task.class_names, options)  # a good_class that is not one of the task's is refused here, not in the job
        running = [j for j in self._jobs.values() if j.task == task.name and j.state not in FINISHED]
        if running:
            raise NotReady(f"task {task.name!r} already has job {running[0].id} {running[0].state}; wait for it or cancel it")
        job = Job(uuid.uuid4().hex[:12], task.name, method, options, force, compare_scratch)
        self._jobs[job.id] = job
        self._db.execute(
            "INSERT INTO jobs (id, task, method, options, state, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (job.id, job.task, job.method, json.dumps(options), job.state, job.created_at),
        )
        job.add_event({"phase": "queued", "message": f"{method} job for task {task.name!r}"})
        runner = asyncio.create_task(self._run(job, task))
        self._tasks.add(runner)
        runner.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        row = self._db.execute("SELECT id, task, method, options, state, created_at, finished_at, result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown job {job_id!r}")
        return self._from_row(row)

    def list(self, task: str = "") -> list[Job]:
        query = "SELECT id, task, method, options, state, created_at, finished_at, result FROM jobs"
        rows = self._db.execute(query + (" WHERE task = ?" if task else "") + " ORDER BY created_at", (task,) if task else ()).fetchall()
        return [self._jobs.get(r[0]) or self._from_row(r) for r in rows]

    def _from_row(self, row) -> Job:
        job = Job(row[0], row[1], row[2], json.loads(row[3]), state=row[4], created_at=row[5], finished_at=row[6] or 0.0, result=json.loads(row[7]))
        job.events.append({"job_id": job.id, "phase": job.state, "message": job.result.get("error", "")})
        return job

    async def watch(self, job_id: str) -> AsyncIterator[dict]:
        """Every event so far, then live ones, until the job ends."""
        job = self.get(job_id)
        sent = 0
        while True:
            changed = job.changed
            while sent < len(job.events):
                yield job.events[sent]
                sent += 1
            if job.state in FINISHED:
                return
            await changed.wait()

    async def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in FINISHED:
            return job
        job.cancelled = True
        # Through add_event, which also swaps in a fresh Event: setting the
        # current one and leaving it set would make watchers spin.
        job.add_event({"phase": "cancelling", "message": "stopping the training process"})
        process = job.process
        if process is not None and process.returncode is None:
            process.terminate()
            asyncio.get_running_loop().call_later(5, _kill_if_alive, process)
        return job

    async def close(self) -> None:
        for job in self._jobs.values():
            if job.state not in FINISHED:
                await self.cancel(job.id)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self._db.close()

    # -- running ----------------------------------------------------------------
    async def _run(self, job: Job, task: Task) -> None:
        tmp = self.versions.temp_dir(task.name, job.id)
        try:
            async with self._slots:
                if job.cancelled:
                    raise asyncio.CancelledError
                self._set_state(job, "running")
                done = await self._spawn(job, task, tmp)
                if job.cancelled:
                    raise asyncio.CancelledError
                await self._finish(job, task, tmp, done)
        except asyncio.CancelledError:
            self._end(job, "cancelled", {"error": "cancelled"}, "cancelled")
        except Exception as exc:  # noqa: BLE001 - the job fails, the server goes on
            log.warning("job %s failed: %s", job.id, exc)
            self._end(job, "failed", {"error": str(exc)}, "failed")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    async def _spawn(self, job: Job, task: Task, tmp) -> dict:
        active = self.versions.active_version(task.name)
        request = {
            "settings": self.settings.to_dict(), "task": task.name, "method": job.method, "class_names": list(task.class_names),
            "backbone": task.backbone, "tmp_dir": str(tmp), "options": job.options, "compare_scratch": job.compare_scratch,
            "active_path": str(self.versions.get(task.name, active).path) if active is not None else None,
            "parent_pid": os.getpid(),
        }
        threads = str(self.settings.train_threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "EDGETL_TRAIN_THREADS": threads}
        # A fresh interpreter (spawn, never fork): the server has started gRPC threads.
        job.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgetl.adapt.worker", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            limit=16 * 1024 * 1024,
        )
        job.process.stdin.write(json.dumps(request).encode())
        job.process.stdin.close()
        stderr_tail: list[str] = []
        stderr_reader = asyncio.create_task(self._drain_stderr(job, stderr_tail))
        final: dict = {}
        async for raw in job.process.stdout:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if event.get("phase") in ("done", "failed"):
                final = event
                if event["phase"] == "failed":
                    job.add_event({"phase": "failed", "message": event.get("message", "")})
            else:
                job.add_event(event)
        code = await job.process.wait()
        await stderr_reader
        if job.cancelled:
            raise asyncio.CancelledError
        if code != 0 or final.get("phase") != "done":
            reason = final.get("message") or (stderr_tail[-1] if stderr_tail else f"exit code {code}")
            if code < 0:
                reason = f"the training process was killed (signal {-code})"
            raise RuntimeError(reason)
        return final

    async def _drain_stderr(self, job: Job, tail: list[str]) -> None:
        async for raw in job.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                log.info("job %s: %s", job.id, line)
                tail.append(line)
                del tail[:-20]

    async def _finish(self, job: Job, task: Task, tmp, done: dict) -> None:
        job.add_event({"phase": "register", "message": "storing the new adapter version"})
        manifest_path = tmp / "manifest.json"

        def fields(version: int) -> dict:
            manifest = json.loads(manifest_path.read_text())
            manifest["version"] = version
            manifest_path.write_text(json.dumps(manifest, indent=2))
            return {
                "method": done.get("method", job.method), "backbone": task.backbone, "export_id": manifest["export_id"], "metrics": done["metrics"],
                "options": done.get("options", {}), "labels": done.get("labels", {}),
                "extra": {"scratch_metrics": done.get("scratch_metrics"), **({"anomaly": done["anomaly"]} if done.get("anomaly") else {})},
            }

        adapter = await asyncio.to_thread(self.versions.register, task.name, tmp, fields)
        result = {
            "version": str(adapter.version), "metrics": done["metrics"], "active_metrics": done.get("active_metrics"),
            "scratch_metrics": done.get("scratch_metrics"), "activated": False,
        }
        activate, result["gate"] = gate(done, job.force, self.settings.gate_tolerance)
        if done.get("auto"):
            result["gate"] = f"auto chose {done['auto']['chosen']} ({done['auto']['reason']}); {result['gate']}"
        if done.get("anomaly"):
            result["anomaly"] = done["anomaly"]
            result["gate"] = f"{result['gate']}; {done['anomaly']['message']}"
        if activate:
            try:
                await self.activator.activate(task.name, adapter.version, reason="trained")
                result["activated"] = True
            except Exception as exc:  # noqa: BLE001 - the version stays a candidate
                result["gate"] = f"passed the gate but failed to load: {exc}"
        self._end(job, "succeeded", result, "done")

    def _set_state(self, job: Job, state: str) -> None:
        job.state = state
        self._db.execute("UPDATE jobs SET state = ? WHERE id = ?", (state, job.id))
        job.add_event({"phase": state})

    def _end(self, job: Job, state: str, result: dict, phase: str) -> None:
        job.state, job.result, job.finished_at = state, result, time.time()
        self._db.execute("UPDATE jobs SET state = ?, finished_at = ?, result = ? WHERE id = ?", (state, job.finished_at, json.dumps(result), job.id))
        job.add_event({"phase": phase, "message": result.get("gate") or result.get("error", "")})
        metrics.JOBS.labels(job.task, job.method, state).inc()
