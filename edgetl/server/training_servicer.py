"""edgetl.v1.TrainingService: start, watch and cancel training jobs."""

from __future__ import annotations

from edgetl.adapt.jobs import JobManager
from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc
from edgetl.runtime.engine import InferenceEngine
from edgetl.server.convert import job_event_to_proto, job_to_proto, options_from_proto


class TrainingServicer(adapt_pb2_grpc.TrainingServiceServicer):
    def __init__(self, engine: InferenceEngine, jobs: JobManager):
        self.engine = engine
        self.jobs = jobs

    async def StartTraining(self, request, context):
        task = self.engine.get_task(request.task)
        job = await self.jobs.start(task, request.method, options_from_proto(request.options), request.force, request.compare_scratch)
        return job_to_proto(job)

    async def WatchJob(self, request, context):
        job = self.jobs.get(request.job_id)
        async for event in self.jobs.watch(request.job_id):
            final = event.get("phase") in ("done", "failed", "cancelled") and job.state in ("succeeded", "failed", "cancelled")
            yield job_event_to_proto(event, job if final else None)

    async def CancelJob(self, request, context):
        return job_to_proto(await self.jobs.cancel(request.job_id))

    async def ListJobs(self, request, context):
        return adapt_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in self.jobs.list(request.task)])
