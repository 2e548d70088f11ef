"""The README's grpcurl examples are requests the server accepts.

grpcurl is not installed here; what it would send is reproduced: the `-d`
JSON is parsed with protobuf's JSON mapping (as grpcurl does) into the
method's request type, found through the server's own reflection pool, and
sent on the raw method. The shell substitution of a base64 file is replaced
by the base64 of the same image.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from google.protobuf import json_format, message_factory

from edgetl.server.app import reflection_pool
from tests.conftest import encode

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = re.compile(r"grpcurl -plaintext -d '(?P<body>.*?)'\s+localhost:50051 (?P<method>[\w.]+/\w+)", re.S)
FILE_SUBSTITUTION = "\"'\"$(base64 -w0 chelsea.png)\"'\""


def examples():
    text = README.read_text().replace("\\\n", " ")
    return [(m["method"], m["body"]) for m in EXAMPLE.finditer(text)]


def test_the_readme_has_examples_for_both_apis():
    methods = {method for method, _ in examples()}
    assert {"edgetl.v1.InferenceService/Classify", "inference.GRPCInferenceService/ModelInfer", "inference.GRPCInferenceService/RepositoryIndex"} <= methods


def test_every_grpcurl_example_succeeds(server, chelsea_rgb):
    pool = reflection_pool()
    png = base64.b64encode(encode(chelsea_rgb, ".png")).decode()
    for method, body in examples():
        service, name = method.rsplit("/", 1)
        descriptor = pool.FindServiceByName(service).FindMethodByName(name)
        request_type = message_factory.GetMessageClass(descriptor.input_type)
        response_type = message_factory.GetMessageClass(descriptor.output_type)
        request = json_format.Parse(body.replace(FILE_SUBSTITUTION, f'"{png}"'), request_type())
        call = server.channel.unary_unary(f"/{method}", request_serializer=request_type.SerializeToString, response_deserializer=response_type.FromString)
        response = call(request, timeout=30)
        as_json = json_format.MessageToDict(response)
        if name == "Classify":
            assert as_json["label"] == "Egyptian cat"
        if name == "ModelInfer":
            assert as_json["outputs"][0]["name"] == "labels" and base64.b64decode(as_json["rawOutputContents"][0])[4:] == b"Egyptian cat"
        if name == "RepositoryIndex":
            assert {"name": "imagenet", "version": "builtin", "state": "READY"}.items() <= as_json["models"][0].items()
