"""The REST bridge: OpenAI / vLLM JSON and SSE on the outside, gRPC to the service on
the inside. It never imports torch, a tokenizer, `engine` or `service`; everything it
knows about models it learns over gRPC."""
