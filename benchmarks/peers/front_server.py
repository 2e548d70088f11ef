"""A minimal gRPC server answering edgetl.v1 `Classify`, in one of three shapes: what the front alone costs.

    python front_server.py SHAPE PORT      # SHAPE: sync | aio-inline | aio-worker

Of edgetl, only its worker hand-off is used: no interceptor, no tasks,
metrics, limits or capture. The work per request is the peers' (`peer_model.PeerModel`: OpenCV
decode or raw RGB pixels, edgetl's normalisation, one ONNX Runtime run,
softmax), and the answer is a real `ClassifyResponse` (label, score, all
1,000 scores). What differs between the shapes is only where the model runs:

- ``sync``: grpc's synchronous server; the handler runs the model in the
  pool thread gRPC hands the call to (one model run at a time, as one worker).
- ``aio-inline``: grpc.aio on uvloop; the model runs on the event loop, as
  KServe's ModelServer runs a synchronous `predict`.
- ``aio-worker``: grpc.aio on uvloop; the loop hands the request to one
  worker thread (edgetl's `WorkerThreads`) and awaits its answer: edgetl's
  shape without the rest of edgetl.

Prints ``ready`` when it serves. `fronts.py` starts and drives these.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from peer_model import PeerModel  # noqa: E402

from edgetl.api.v1 import image_pb2, inference_pb2  # noqa: E402

SHAPES = ("sync", "aio-inline", "aio-worker")
SERVICE = "edgetl.v1.InferenceService"


class Classifier:
    """ClassifyRequest bytes -> ClassifyResponse bytes, with the peers' model."""

    def __init__(self) -> None:
        self.model = PeerModel()

    def __call__(self, request: inference_pb2.ClassifyRequest) -> inference_pb2.ClassifyResponse:
        image = request.image
        if image.HasField("encoded"):
            labels, scores = self.model.predict_encoded([image.encoded])
        else:
            raw = image.raw
            if raw.color_order != image_pb2.COLOR_ORDER_RGB or raw.dtype != "uint8":
                raise ValueError("raw pixels must be RGB uint8")
            pixels = np.frombuffer(raw.data, np.uint8).reshape(1, *raw.shape)
            labels, scores = self.model.predict_pixels(pixels)
        best = int(scores[0].argmax())
        return inference_pb2.ClassifyResponse(
            task=request.task, label=labels[0].decode(), score=float(scores[0, best]), scores=scores[0].tolist()
        )


def handlers(behaviour) -> grpc.GenericRpcHandler:
    """edgetl.v1 `Classify` answered by `behaviour(request, context)`, with the generated messages' (de)serializers."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Classify": grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=inference_pb2.ClassifyRequest.FromString,
                response_serializer=inference_pb2.ClassifyResponse.SerializeToString,
            )
        },
    )


def serve_sync(classify: Classifier, port: int) -> None:
    from concurrent import futures

    one_at_a_time = threading.Lock()  # one model run at a time, like one inference worker

    def behaviour(request, context):
        with one_at_a_time:
            return classify(request)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handlers(behaviour),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def serve_aio(classify: Classifier, port: int, worker: bool) -> None:
    import uvloop

    from edgetl.runtime.workers import WorkerThreads  # edgetl's own hand-off: one queue in, one loop callback out

    workers = WorkerThreads(1, "worker") if worker else None

    async def behaviour(request, context):
        if workers is None:
            return classify(request)
        return await workers.run(classify, request)

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handlers(behaviour),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    uvloop.run(main())


def main() -> None:
    shape, port = sys.argv[1], int(sys.argv[2])
    if shape not in SHAPES:
        raise SystemExit(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    classify = Classifier()
    if shape == "sync":
        serve_sync(classify, port)
    else:
        serve_aio(classify, port, worker=shape == "aio-worker")


if __name__ == "__main__":
    main()
