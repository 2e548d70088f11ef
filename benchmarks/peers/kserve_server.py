"""KServe's Python ModelServer serving the peer model (KServe v2 over gRPC).

    python kserve_server.py GRPC_PORT HTTP_PORT     # from the kserve virtual environment

A custom `kserve.Model` as KServe's documentation writes one: a synchronous
`predict` that reads the one input tensor and returns `labels` and `scores`.
"""

import sys
from pathlib import Path

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

sys.path.insert(0, str(Path(__file__).parent))
from peer_model import PeerModel


class ImageClassifier(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.model = PeerModel()
        self.ready = True

    def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        tensor = payload.inputs[0]
        if tensor.name == "images":
            labels, scores = self.model.predict_encoded(
                list(tensor.as_numpy().reshape(-1))
            )
        else:
            labels, scores = self.model.predict_pixels(tensor.as_numpy())
        out_labels = InferOutput("labels", [len(labels)], "BYTES")
        out_labels.set_data_from_numpy(np.array(labels, dtype=np.object_))
        out_scores = InferOutput("scores", list(scores.shape), "FP32")
        out_scores.set_data_from_numpy(scores)
        return InferResponse(
            response_id=payload.id,
            model_name=self.name,
            infer_outputs=[out_labels, out_scores],
        )


if __name__ == "__main__":
    grpc_port, http_port = int(sys.argv[1]), int(sys.argv[2])
    ModelServer(grpc_port=grpc_port, http_port=http_port, workers=1).start(
        [ImageClassifier("imagenet")]
    )
