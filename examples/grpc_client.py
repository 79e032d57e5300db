"""The native gRPC API from Python stubs (start the server with `make serve`)."""

import grpc

from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.generate.v1 import generate_pb2, generate_pb2_grpc

with grpc.insecure_channel("localhost:50051") as channel:
    stub = generate_pb2_grpc.GenerateServiceStub(channel)
    request = generate_pb2.ChatRequest(
        model="demo",
        messages=[chat_pb2.ChatMessage(role="user", content="Hello!")],
        sampling=params_pb2.SamplingParams(temperature=0),
        stopping=params_pb2.StoppingParams(max_tokens=8),
    )
    for message in stub.ChatStream(request, metadata=[("x-request-id", "example-1")]):
        event = message.WhichOneof("event")
        if event == "delta":
            print(repr(message.delta.content), message.delta.finish.reason or "")
        elif event == "end":
            print("usage:", message.end.usage)
