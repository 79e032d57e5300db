"""protoserve's benchmarks: `protoserve bench throughput` (offline, through the engine API)
and `protoserve bench serve` (online, against running servers), each against Hugging Face
transformers baselines measured in the same run on the same local model.

Modules: models (the benchmark checkpoints, built locally), tokenizer (their BPE), workload
(requests and arrivals), stats (medians, percentiles), machine (versions, RSS, results
files), engine_bench / hf_bench (offline measurements), servers / clients (online),
throughput / serve (the two commands), plots, cli (argparse only: no torch at import)."""
