"""Seldon MLServer runtime serving the peer model (KServe v2 over gRPC).

Started by the benchmark as `mlserver start DIR`, where DIR holds the
settings.json (ports) and model-settings.json (name ``imagenet``,
implementation ``mlserver_model.ImageClassifier``) it writes; this directory is
on PYTHONPATH. MLServer's defaults are kept: one parallel inference worker
process, no adaptive batching.
"""

import sys
from pathlib import Path

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

sys.path.insert(0, str(Path(__file__).parent))
from peer_model import PeerModel


class ImageClassifier(MLModel):
    async def load(self) -> bool:
        self.model = PeerModel()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensor = payload.inputs[0]
        if tensor.name == "images":
            labels, scores = self.model.predict_encoded(
                list(getattr(tensor.data, "root", tensor.data))
            )
        else:
            labels, scores = self.model.predict_pixels(NumpyCodec.decode_input(tensor))
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                ResponseOutput(
                    name="labels", shape=[len(labels)], datatype="BYTES", data=labels
                ),
                NumpyCodec.encode_output("scores", scores),
            ],
        )
