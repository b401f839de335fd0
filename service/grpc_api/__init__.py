"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`):
its messages (protocol, from inference.proto), their tensors (tensors), the
RPCs (servicer) and the server each API worker process runs beside HTTP
(server). Requests mean what they mean over HTTP's /v2 (service.open_inference)."""
