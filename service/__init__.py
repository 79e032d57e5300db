"""The gRPC service: implements the protoserve API on top of the engine.

Validation, tokenisation, chat templates, incremental detokenisation and stop strings
live here; the engine only sees token ids. Importing this package is cheap: torch and
the engine are imported by the modules that need them.
"""
