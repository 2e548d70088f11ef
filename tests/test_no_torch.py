"""DESIGN.md decision 1: the serving process never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_server_serves_without_importing_torch(data_dir, chelsea_rgb, tmp_path):
    from tests.conftest import encode

    image = tmp_path / "cat.png"
    image.write_bytes(encode(chelsea_rgb))
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        import grpc
        from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
        from edgetl.server.app import EdgetlServer
        from edgetl.settings import Settings

        async def main():
            server = EdgetlServer(Settings(data_dir=Path({str(data_dir)!r}), port=0, terminal_port=0))
            address = await server.start()
            async with grpc.aio.insecure_channel(address) as channel:
                stub = inference_pb2_grpc.InferenceServiceStub(channel)
                request = inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=Path({str(image)!r}).read_bytes()))
                print((await stub.Classify(request)).label)
            await server.stop(0)

        asyncio.run(main())
        print("torch imported:", "torch" in sys.modules, "timm imported:", "timm" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Egyptian cat" in result.stdout
    assert "torch imported: False timm imported: False" in result.stdout
