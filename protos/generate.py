"""Regenerate the checked-in Python code for the protos under protos/.

    python protos/generate.py            # writes into the repository
    python protos/generate.py --out DIR  # writes elsewhere (the drift test)

The output lands at edgetl/api/v1/ because the .proto files live at
protos/edgetl/api/v1/: protoc derives Python module paths from file paths,
while the wire package stays `edgetl.v1`. Likewise the KServe v2 protocol
(wire package `inference`) is generated into edgetl/api/kserve/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out: Path) -> None:
    from grpc_tools import protoc  # the test extra; never needed at run time

    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for module in (out / "edgetl" / "api" / "kserve").glob("*_pb2.py"):
        _use_private_pool(module)


#: The one edit made to protoc's output. The KServe messages are in the
#: `inference` package, which tritonclient (and anything else built from
#: Triton's protos) registers in protobuf's default descriptor pool too; two
#: different files defining `inference.ModelInferRequest` in one pool make the
#: second import fail. A private pool lets edgetl and a Triton client live in
#: one process. The wire format does not depend on the pool.
_DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
_PRIVATE_POOL = "DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile(  # private pool: see protos/generate.py\n    "


def _use_private_pool(module: Path) -> None:
    text = module.read_text()
    if text.count(_DEFAULT_POOL) != 1:
        raise SystemExit(f"{module}: protoc's output changed shape; update _use_private_pool in protos/generate.py")
    module.write_text(text.replace(_DEFAULT_POOL, _PRIVATE_POOL))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
