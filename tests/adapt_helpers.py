"""Helpers for adaptation tests: label a synthetic set and train through a real server."""

from __future__ import annotations

import cv2

from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc
from edgetl.synthetic import make_images

CLASSES = ("ok", "pit", "burn")


def png(img) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def create_and_label(server, task="parts", backbone="", classes=CLASSES, per_class=10, size=96, seed=0, texture="brick"):
    """Create `task` and label a synthetic set; returns the images by class."""
    model_pb2_grpc.ModelServiceStub(server.channel).CreateTask(model_pb2.CreateTaskRequest(name=task, class_names=list(classes), backbone=backbone), timeout=300)
    labels = adapt_pb2_grpc.LabelServiceStub(server.channel)
    images = []
    for kind, img in make_images(texture, classes, per_class, size, seed):
        labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=png(img)), class_name=kind, operator_id="test"), timeout=30)
        images.append((kind, img))
    return images


def train(server, task="parts", method="head", force=False, compare_scratch=False, **options):
    """Start a job and follow it to the end; returns (events, final job)."""
    stub = adapt_pb2_grpc.TrainingServiceStub(server.channel)
    job = stub.StartTraining(
        adapt_pb2.StartTrainingRequest(task=task, method=method, options=adapt_pb2.TrainingOptions(**options), force=force, compare_scratch=compare_scratch),
        timeout=30,
    )
    events = list(stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=600))
    return events, events[-1].job


def classify(server, img, task="parts"):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    return stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=png(img))), timeout=30)


def adapters(server, task="parts"):
    return adapt_pb2_grpc.AdapterServiceStub(server.channel)
