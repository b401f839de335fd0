"""Triton's `tritonclient.grpc` and KServe's `InferenceGRPCClient`, run in
a child process (tests.oip_grpc.ClientProcess): each function imports its
client, makes its calls, and answers plain data (numpy arrays, dicts, a
`Refusal` for a call the server refused), never the clients' own objects,
whose classes the parent must not load."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Refusal:
    status: str  # the gRPC status code's name: "INVALID_ARGUMENT"
    message: str


def _triton_refusal(error: Any) -> Refusal:
    # tritonclient gives the status as text: "StatusCode.INVALID_ARGUMENT".
    return Refusal(str(error.status()).removeprefix("StatusCode."), error.message())


def triton_health(address: str, key: str, model: str, version: str = "") -> dict[str, Any]:
    """Live, ready, the model's readiness and metadata, as tritonclient tells them."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(address)
    headers = {"authorization": f"Bearer {key}"}
    try:
        return {
            "live": client.is_server_live(),
            "ready": client.is_server_ready(),
            "model_ready": client.is_model_ready(model, version, headers=headers),
            "metadata": client.get_model_metadata(model, version, headers=headers, as_json=True),
            "server": client.get_server_metadata(headers=headers, as_json=True),
        }
    finally:
        client.close()


def triton_infer(
    address: str, key: str | None, model: str, x: np.ndarray, version: str = "",
    outputs: list[str] | None = None,
) -> dict[str, Any] | Refusal:  # fmt: skip
    """One infer with `x` as an FP32 input (raw, as tritonclient sends it)."""
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(address)
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    requested = [triton.InferRequestedOutput(name) for name in outputs] if outputs else None
    headers = {"authorization": f"Bearer {key}"} if key else None
    try:
        result = client.infer(model, [tensor], version, outputs=requested, request_id="req-7",
                              headers=headers)  # fmt: skip
    except InferenceServerException as error:
        return _triton_refusal(error)
    finally:
        client.close()
    response = result.get_response()
    return {
        "model_version": response.model_version,
        "id": response.id,
        "raw": len(response.raw_output_contents) > 0,
        "outputs": {output.name: result.as_numpy(output.name) for output in response.outputs},
    }


def kserve_session(address: str, key: str, model: str, x: np.ndarray) -> dict[str, Any]:
    """KServe's client: health, and `x` sent typed (a list) and raw (numpy)."""
    return asyncio.run(_kserve_session(address, key, model, x))


async def _kserve_session(address: str, key: str, model: str, x: np.ndarray) -> dict[str, Any]:
    import grpc
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    headers = [("authorization", f"Bearer {key}")]
    answers: dict[str, Any] = {}
    async with InferenceGRPCClient(address, retries=0) as client:
        answers["live"] = await client.is_server_live()
        answers["ready"] = await client.is_server_ready()
        answers["model_ready"] = await client.is_model_ready(model, headers=headers)
        for kind, data in (("typed", x.reshape(-1).tolist()), ("raw", x)):
            tensor = InferInput("x", list(x.shape), "FP32", data=data)
            request = InferRequest(model, [tensor], request_id=f"kserve-{kind}")
            response = await client.infer(request, headers=headers)
            answers[kind] = {
                "id": response.id,
                "model_version": response.model_version,
                "outputs": {output.name: output.as_numpy() for output in response.outputs},
            }
        try:
            await client.is_model_ready(model)
        except grpc.aio.AioRpcError as error:
            answers["no_key"] = Refusal(error.code().name, error.details() or "")
    return answers
