"""NVIDIA PyTriton (the Triton Inference Server binary, Python backend) serving the peer model.

    python pytriton_server.py GRPC_PORT HTTP_PORT METRICS_PORT   # from the pytriton virtual environment

PyTriton's defaults are kept: batching on with its dynamic batcher (max batch
4), one model instance. Inputs carry Triton's batch dimension: ``images``
BYTES [N, 1], ``pixels`` UINT8 [N, H, W, 3]; edgetl, KServe and MLServer take
the same shapes, so one request serves every server. Triton's stub process
needs LD_LIBRARY_PATH to name this Python's libdir (the benchmark sets it).
"""

import sys
from pathlib import Path

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

sys.path.insert(0, str(Path(__file__).parent))
from peer_model import PeerModel

model = PeerModel()


@batch
def infer(images=None, pixels=None):
    if images is not None:
        labels, scores = model.predict_encoded([bytes(row[0]) for row in images])
    else:
        labels, scores = model.predict_pixels(pixels)
    return {
        "labels": np.array(labels, dtype=np.bytes_).reshape(-1, 1),
        "scores": scores,
    }


if __name__ == "__main__":
    grpc_port, http_port, metrics_port = (int(a) for a in sys.argv[1:4])
    config = TritonConfig(
        grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="imagenet",
            infer_func=infer,
            inputs=[
                Tensor(name="images", dtype=np.bytes_, shape=(1,), optional=True),
                Tensor(name="pixels", dtype=np.uint8, shape=(-1, -1, 3), optional=True),
            ],
            outputs=[
                Tensor(name="labels", dtype=np.bytes_, shape=(1,)),
                Tensor(name="scores", dtype=np.float32, shape=(-1,)),
            ],
            config=ModelConfig(),
        )
        print("ready", flush=True)
        triton.serve()
