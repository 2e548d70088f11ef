"""Every kind of bad input gets a clear status and message, and the server goes on serving."""

from __future__ import annotations

import struct
import zlib

import grpc
import numpy as np
import pytest

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
from tests.conftest import encode


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of zeros: a few hundred KB that inflate to width*height bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bad_cases(chelsea_png: bytes, chelsea_jpg: bytes):
    tiff = b"II*\x00" + b"\x00" * 64
    gif = b"GIF89a" + b"\x00" * 64
    return {
        "empty payload": (image_pb2.Image(encoded=b""), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        "no image at all": (image_pb2.Image(), grpc.StatusCode.INVALID_ARGUMENT, "no image"),
        "random bytes": (image_pb2.Image(encoded=b"\x00\x01garbage" * 10), grpc.StatusCode.INVALID_ARGUMENT, "unsupported image format"),
        "GIF": (image_pb2.Image(encoded=gif), grpc.StatusCode.INVALID_ARGUMENT, "JPEG, PNG or BMP"),
        "TIFF": (image_pb2.Image(encoded=tiff), grpc.StatusCode.INVALID_ARGUMENT, "JPEG, PNG or BMP"),
        "truncated PNG": (image_pb2.Image(encoded=chelsea_png[: len(chelsea_png) // 3]), grpc.StatusCode.INVALID_ARGUMENT, "corrupt PNG"),
        "PNG header only": (image_pb2.Image(encoded=chelsea_png[:20]), grpc.StatusCode.INVALID_ARGUMENT, "corrupt PNG"),
        "truncated JPEG": (image_pb2.Image(encoded=chelsea_jpg[:200]), grpc.StatusCode.INVALID_ARGUMENT, "corrupt JPEG"),
        "BMP header only": (image_pb2.Image(encoded=b"BM" + b"\x00" * 10), grpc.StatusCode.INVALID_ARGUMENT, "corrupt BMP"),
        "raw: too few bytes": (image_pb2.Image(raw=image_pb2.RawImage(data=b"\x00" * 100, shape=[10, 10, 3])), grpc.StatusCode.INVALID_ARGUMENT, "needs 300"),
        "raw: four channels": (image_pb2.Image(raw=image_pb2.RawImage(data=b"\x00" * 400, shape=[10, 10, 4])), grpc.StatusCode.INVALID_ARGUMENT, "expected [height, width, 3]"),
        "raw: 1-D shape": (image_pb2.Image(raw=image_pb2.RawImage(data=b"\x00" * 30, shape=[30])), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        "raw: zero height": (image_pb2.Image(raw=image_pb2.RawImage(data=b"", shape=[0, 10, 3])), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        "raw: float32": (image_pb2.Image(raw=image_pb2.RawImage(data=b"\x00" * 1200, shape=[10, 10, 3], dtype="float32")), grpc.StatusCode.INVALID_ARGUMENT, "only 'uint8'"),
        "raw: over the pixel cap": (image_pb2.Image(raw=image_pb2.RawImage(data=b"", shape=[100_000, 100_000, 3])), grpc.StatusCode.RESOURCE_EXHAUSTED, "over the limit"),
    }


@pytest.fixture(scope="module")
def chelsea_files(chelsea_rgb):
    return encode(chelsea_rgb, ".png"), encode(chelsea_rgb, ".jpg")


def _assert_still_serving(server, chelsea_png):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    r = stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=chelsea_png)), timeout=30)
    assert r.label == "Egyptian cat"


def test_each_bad_image_is_rejected_clearly_and_the_server_goes_on(server, chelsea_files):
    chelsea_png, chelsea_jpg = chelsea_files
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    for case, (image, code, phrase) in _bad_cases(chelsea_png, chelsea_jpg).items():
        with pytest.raises(grpc.RpcError) as info:
            stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image), timeout=30)
        assert info.value.code() == code, case
        assert phrase in info.value.details(), f"{case}: {info.value.details()}"
        assert "Traceback" not in info.value.details()
        _assert_still_serving(server, chelsea_png)


def test_decompression_bomb_is_refused_from_its_header(server_factory, chelsea_files):
    """A 144-megapixel PNG of ~150 KB: refused before OpenCV allocates a byte of it."""
    server = server_factory()  # default cap: 40 MP
    bomb = png_bomb(12_000, 12_000)
    assert len(bomb) < 1_000_000
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=bomb)), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "12000x12000 = 144,000,000 pixels" in info.value.details()
    _assert_still_serving(server, chelsea_files[0])


def test_pixel_cap_is_configurable(server_factory, chelsea_rgb, chelsea_files):
    server = server_factory(max_pixels=100_000)  # chelsea is 451x300 = 135,300
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=chelsea_files[1])), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limits.max_pixels" in info.value.details()
    small = encode(np.ascontiguousarray(chelsea_rgb[::2, ::2]), ".png")
    r = stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=small)), timeout=30)
    assert r.label


def test_message_over_the_size_limit_is_resource_exhausted(server_factory, chelsea_files):
    server = server_factory(max_message_bytes=1_000_000)
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=b"\xff\xd8" + b"\x00" * 2_000_000)), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_still_serving(server, chelsea_files[0])


def test_unknown_task_is_not_found_and_lists_the_known_ones(server, chelsea_files):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(inference_pb2.ClassifyRequest(task="weld-seam-9", image=image_pb2.Image(encoded=chelsea_files[0])), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "unknown task 'weld-seam-9'" in info.value.details() and "imagenet" in info.value.details()
    _assert_still_serving(server, chelsea_files[0])


def test_malformed_protobuf_is_rejected(server, chelsea_files):
    """Bytes that are not a ClassifyRequest at all, sent on the raw method."""
    call = server.channel.unary_unary("/edgetl.v1.InferenceService/Classify", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as info:
        call(b"\xff\xff\xff\xff\x0f", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in info.value.details() and "Traceback" not in info.value.details()
    _assert_still_serving(server, chelsea_files[0])


def test_malformed_frame_on_a_stream_ends_it_with_invalid_argument(server, chelsea_files):
    call = server.channel.stream_stream("/edgetl.v1.InferenceService/ClassifyStream", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as info:
        list(call(iter([b"\xff\xff\xff\xff\x0f"]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed request" in info.value.details()
    _assert_still_serving(server, chelsea_files[0])


def test_over_the_queue_bound_callers_get_unavailable_at_once(server_factory, chelsea_files):
    """A burst larger than [limits] max_queue: the excess is refused, not queued without end."""
    server = server_factory(max_queue=2, worker_threads=1)
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    big = encode(np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), dtype=np.uint8), ".png")  # slow to decode
    request = inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=big))
    futures = [stub.Classify.future(request, timeout=60) for _ in range(12)]
    codes, refused = [], []
    for f in futures:
        try:
            f.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
            refused.append(exc.details())
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
    assert all("images are waiting (limit 2)" in m for m in refused)
    _assert_still_serving(server, chelsea_files[0])


def test_over_the_concurrent_call_limit_a_new_call_is_resource_exhausted(server_factory, chelsea_files):
    """[limits] max_concurrent_rpcs: two open streams fill a limit of 2; a third call is refused at once."""
    import queue

    server = server_factory(max_concurrent_rpcs=2)
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    frame = inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=chelsea_files[1]))
    feeds = [queue.Queue() for _ in range(2)]
    streams = [stub.ClassifyStream(iter(feed.get, None), timeout=60) for feed in feeds]
    for feed, stream in zip(feeds, streams):  # each stream answers one frame, so both are open on the server
        feed.put(frame)
        assert next(stream).label == "Egyptian cat"
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(frame, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for feed, stream in zip(feeds, streams):
        feed.put(None)
        assert list(stream) == []
    _assert_still_serving(server, chelsea_files[0])
