"""The protocol's messages and service, from inference.proto, compiled when
this module is imported (grpcio-tools' protoc, in a child process) into a
descriptor pool of this module's own.

No generated code: nothing to regenerate when protobuf moves within the
range tensorflow, tritonclient and kserve allow, since the message classes
are built by the installed protobuf runtime itself. A child process: protoc
run in a process that has loaded TensorFlow, whose own protobuf library
clashes with grpcio-tools', crashes it (the Keras backend, an export, a
test). A pool of our own: protobuf's default pool refuses a second file that
defines the same names, and Triton's and KServe's clients register
`inference.*` there, so a process that serves and also runs one of them (the
tests, the benchmark) keeps both.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO = Path(__file__).with_name("inference.proto")
PACKAGE = "inference"
SERVICE_NAME = f"{PACKAGE}.GRPCInferenceService"


def _compiled(proto: Path) -> descriptor_pb2.FileDescriptorSet:
    with tempfile.TemporaryDirectory(prefix="fitserve-proto-") as folder:
        output = Path(folder) / "inference.pb"
        command = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={proto.parent}",
                   f"--descriptor_set_out={output}", proto.name]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"protoc could not compile {proto} (exit status {done.returncode}): "
                f"{done.stderr.strip()[-2000:]}"
            )
        return descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())


POOL = descriptor_pool.DescriptorPool()
for _file in _compiled(PROTO).file:
    POOL.Add(_file)
SERVICE = POOL.FindServiceByName(SERVICE_NAME)


def message_class(name: str) -> Any:
    """The class of the protocol's message `name` (e.g. "ModelInferRequest")."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


ModelInferRequest = message_class("ModelInferRequest")
ModelInferResponse = message_class("ModelInferResponse")
InferTensorContents = message_class("InferTensorContents")
