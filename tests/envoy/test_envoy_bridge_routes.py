"""Through Envoy (front.yaml) to the REST bridge: the /v1/realtime WebSocket upgrade
(a live transcription, deltas concatenating to the result) and the scoring, reranking
and classification paths, whose answers equal the bridge's own."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
import websockets
from envoy_stack import CLASSIFIER, EMBED_MODEL, SPEECH_MODEL

from tests.audio_samples import pcm16, synthetic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

QUERY = "How do I bake bread at home?"
DOCUMENTS = ["The train leaves at nine.", "Knead the dough, let it rise, then bake it."]
VOLATILE = ("id", "created")  # differ between two answers to the same request


async def _recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=60))


async def test_realtime_websocket_through_envoy(front) -> None:
    url = front.envoy.url.replace("http://", "ws://") + "/v1/realtime"
    pcm = pcm16(synthetic(2.0, seed=4))
    async with websockets.connect(url) as ws:
        created = await _recv(ws)
        assert created["type"] == "session.created" and created["id"].startswith("sess-")
        await ws.send(json.dumps({"type": "session.update", "model": SPEECH_MODEL,
                                  "language": "en"}))  # fmt: skip
        for start in range(0, len(pcm), 3200):  # 100 ms chunks
            chunk = base64.b64encode(pcm[start : start + 3200]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit", "final": True}))
        deltas = []
        while (event := await _recv(ws))["type"] != "transcription.done":
            assert event["type"] == "transcription.delta", event
            deltas.append(event["delta"])
        assert event["text"] and "".join(deltas) == event["text"]
        assert event["usage"]["completion_tokens"] > 0
        await ws.send("{not json")  # an error event over the same upgraded connection
        assert (await _recv(ws))["code"] == "invalid_json"


@pytest.mark.parametrize(
    "path,body",
    [
        ("/score", {"model": EMBED_MODEL, "queries": QUERY, "documents": DOCUMENTS}),
        ("/v1/score", {"model": EMBED_MODEL, "queries": QUERY, "documents": DOCUMENTS}),
        ("/rerank", {"model": EMBED_MODEL, "query": QUERY, "documents": DOCUMENTS}),
        ("/v1/rerank", {"model": EMBED_MODEL, "query": QUERY, "documents": DOCUMENTS}),
        ("/v2/rerank", {"model": EMBED_MODEL, "query": QUERY, "documents": DOCUMENTS}),
        ("/classify", {"model": CLASSIFIER, "input": DOCUMENTS}),
        ("/pooling", {"model": EMBED_MODEL, "input": DOCUMENTS[0]}),
    ],
)
def test_scoring_and_pooling_paths_reach_the_bridge(front, path, body) -> None:
    through = httpx.post(f"{front.envoy.url}{path}", json=body, timeout=60)
    direct = httpx.post(f"{front.serve.http_url}{path}", json=body, timeout=60)
    assert through.status_code == direct.status_code == 200, through.text
    assert through.headers["content-type"] == "application/json"
    ours, theirs = through.json(), direct.json()
    for key in VOLATILE:
        ours.pop(key, None), theirs.pop(key, None)
    assert ours == theirs
    if "rerank" in path:
        assert ours["results"][0]["index"] == 1  # the baking document
    if path == "/classify":
        assert [len(d["probs"]) for d in ours["data"]] == [3, 3]
