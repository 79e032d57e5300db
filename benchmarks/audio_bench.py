"""Speech benchmark: real-time factor and commit-to-first-delta latency on the tiny Whisper.

    python -m benchmarks.audio_bench [--model DIR] [--runs 3] [--threads N] [--out-dir DIR]
        [--short-seconds 10] [--long-seconds 60] [--concurrency 8] [--stream-seconds 3]

Starts `protoserve serve` (the speech demo model unless --model) on free ports and
measures, each `--runs` times (median and [min, max] reported):

- **RTF** (wall seconds / audio seconds; < 1 is faster than real time) of gRPC
  `Transcribe` on a 10 s clip (one window) and a 60 s clip (long-form: windows in
  sequence), and of 8 concurrent 10 s clips (windows batched in the engine); plus
  transformers' `generate` on the same 10 s features in this process, as the baseline.
- **commit-to-first-delta**: a StreamTranscribe call has received 3 s of audio; the clock
  runs from sending the commit to the first delta (and to the utterance's result), over
  gRPC and through the bridge's /v1/realtime WebSocket.

The audio is espeak-ng speech when installed, else a synthetic signal (said in the
output). Writes results.json under benchmarks/results/<timestamp>-audio/. Run it from the
repository root (it reuses tests/audio_samples.py)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
from pathlib import Path

import grpc
import torch

from benchmarks.machine import machine_info, results_dir, write_json
from benchmarks.servers import free_port, protoserve_command, running
from benchmarks.stats import spread
from protoserve.audio.v1 import audio_pb2 as pb
from protoserve.audio.v1 import audio_pb2_grpc
from tests.audio_samples import encode, espeak, pcm16, synthetic

MODEL = "whisper"
RATE = 16_000


def _audio(seconds: float):
    audio = espeak(seconds=seconds)
    return ("espeak-ng", audio) if audio is not None else ("synthetic", synthetic(seconds))


# -- real-time factor --------------------------------------------------------------------
async def _transcribe(stub, data: bytes, name: str) -> None:
    request = pb.TranscribeRequest(model=MODEL, audio=data, filename=name, language="en")
    await stub.Transcribe(request, timeout=600)


async def _rtf(stub, data: bytes, name: str, seconds: float, concurrent: int = 1) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_transcribe(stub, data, name) for _ in range(concurrent)))
    return (time.perf_counter() - started) / (seconds * concurrent)


def _hf_rtfs(model_dir: Path, audio, seconds: float, runs: int) -> list[float]:
    """transformers: features + `generate` per run, after a warm-up call (as the server's)."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir)).eval()
    extractor = WhisperFeatureExtractor.from_pretrained(str(model_dir))

    def once() -> float:
        started = time.perf_counter()
        features = extractor(audio, sampling_rate=RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            model.generate(features, language="en", task="transcribe")
        return (time.perf_counter() - started) / seconds

    once()
    return [once() for _ in range(runs)]


# -- commit-to-first-delta -----------------------------------------------------------------
async def _grpc_latency(stub, pcm: bytes) -> tuple[float, float]:
    outbox: asyncio.Queue = asyncio.Queue()

    async def requests():
        while (message := await outbox.get()) is not None:
            yield message

    call = stub.StreamTranscribe(requests(), timeout=600)
    await outbox.put(pb.StreamTranscribeRequest(config=pb.StreamConfig(model=MODEL, language="en")))
    for start in range(0, len(pcm), 3200):  # 100 ms chunks
        await outbox.put(pb.StreamTranscribeRequest(audio=pcm[start : start + 3200]))
    responses = aiter(call)
    assert (await anext(responses)).HasField("ready")
    await asyncio.sleep(0.3)  # the audio is in; only the commit is timed
    committed = time.perf_counter()
    await outbox.put(pb.StreamTranscribeRequest(commit=pb.Commit(final=True)))
    first = None
    async for response in responses:
        if response.HasField("delta") and first is None:
            first = time.perf_counter() - committed
        if response.HasField("result"):
            done = time.perf_counter() - committed
    await outbox.put(None)
    return first if first is not None else float("nan"), done


async def _ws_latency(url: str, pcm: bytes) -> tuple[float, float]:
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()  # session.created
        await ws.send(json.dumps({"type": "session.update", "model": MODEL, "language": "en"}))
        for start in range(0, len(pcm), 3200):
            chunk = base64.b64encode(pcm[start : start + 3200]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        await asyncio.sleep(0.3)
        committed = time.perf_counter()
        await ws.send(json.dumps({"type": "input_audio_buffer.commit", "final": True}))
        first = None
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == "transcription.delta" and first is None:
                first = time.perf_counter() - committed
            if event["type"] in ("transcription.done", "error"):
                return first if first is not None else float("nan"), time.perf_counter() - committed


# -- the run -------------------------------------------------------------------------------
async def _measure(server, model_dir: Path, args: argparse.Namespace) -> dict:
    """Clip lengths from the command line (defaults: 10 s, 60 s, 8 concurrent, 3 s)."""
    short, long, many = args.short_seconds, args.long_seconds, args.concurrency
    source, ten = _audio(short)
    _, sixty = _audio(long)
    ten_file, sixty_file = encode(ten, "wav"), encode(sixty, "wav")
    pcm = pcm16(_audio(args.stream_seconds)[1])
    results: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = audio_pb2_grpc.AudioServiceStub(channel)
        await _rtf(stub, *ten_file, short)  # warm-up
        for _ in range(args.runs):
            add(f"rtf_{short:g}s", await _rtf(stub, *ten_file, short))
            add(f"rtf_{long:g}s_long_form", await _rtf(stub, *sixty_file, long))
            add(f"rtf_{many}x{short:g}s_concurrent",
                await _rtf(stub, *ten_file, short, concurrent=many))  # fmt: skip
            first, done = await _grpc_latency(stub, pcm)
            add("grpc_commit_to_first_delta_s", first)
            add("grpc_commit_to_result_s", done)
            ws_url = server.http_url.replace("http://", "ws://") + "/v1/realtime"
            first, done = await _ws_latency(ws_url, pcm)
            add("ws_commit_to_first_delta_s", first)
            add("ws_commit_to_done_s", done)
    # The baseline, after the server's runs (never overlapping them).
    results[f"hf_generate_rtf_{short:g}s"] = _hf_rtfs(model_dir, ten, short, args.runs)
    return {"audio": source, "raw": results, "summary": {k: spread(v) for k, v in results.items()}}


def _model_dir(path: str | None, tmp: str) -> Path:
    if path:
        return Path(path)
    from service.demo_whisper import build_whisper_model

    return build_whisper_model(Path(tmp) / "whisper")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="A Whisper checkpoint directory (default: the demo).")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (both sides)")
    parser.add_argument("--out-dir")
    parser.add_argument("--short-seconds", type=float, default=10.0, help="the one-window clip")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="the long-form clip")
    parser.add_argument("--concurrency", type=int, default=8, help="short clips at once")
    parser.add_argument("--stream-seconds", type=float, default=3.0,
                        help="audio sent before the timed commit")  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = results_dir(args.out_dir, "audio")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_dir(args.model, tmp)
        http, grpc_port = free_port(), free_port()
        command = protoserve_command(model_dir, MODEL, http, grpc_port, "cpu", {})
        env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else None
        with running(
            "protoserve", command, f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc_port}",
            MODEL, out, timeout=300, env=env,
        ) as server:  # fmt: skip
            measured = asyncio.run(_measure(server, model_dir, args))
    report = {"model": str(args.model or "demo whisper"), "runs": args.runs,
              "short_seconds": args.short_seconds, **measured}  # fmt: skip
    write_json(out / "results.json", {**report, "machine": machine_info()})
    _print(report)
    print(f"\nresults: {out / 'results.json'}")
    return 0


def _print(report: dict) -> None:
    print(f"audio: {report['audio']}; {report['runs']} runs; median [min, max]")
    for key, stats in report["summary"].items():
        print(f"  {key:32s} {stats['median']:8.4f}  [{stats['min']:.4f}, {stats['max']:.4f}]")
    summary, short = report["summary"], report["short_seconds"]
    ratio = summary[f"hf_generate_rtf_{short:g}s"]["median"] / summary[f"rtf_{short:g}s"]["median"]
    print(f"  transformers generate RTF / protoserve RTF ({short:g} s clip): {ratio:.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
