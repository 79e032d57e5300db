#!/usr/bin/env bash
# The native API as JSON through Envoy's gRPC-JSON transcoder (envoy/, `make envoy`).
# Paths and bodies come from the google.api.http rules in proto/; field names as in the
# .proto (snake_case; camelCase is accepted too); enums as names.
#
#   make serve            # gRPC :50051, REST bridge :8000
#   make envoy            # Envoy :8080 in front of both
#   examples/curl/native_json.sh [BASE_URL]     (default http://localhost:8080)
set -euo pipefail
BASE=${1:-${BASE:-http://localhost:8080}}
show() { echo; echo "### $*"; }

show "Unary Generate: one JSON object (GenerateResponse)"
curl -sS "$BASE/api/v1/generate" -H 'x-request-id: curl-1' -d '{
  "model": "demo", "text": "The lighthouse keeper",
  "sampling": {"temperature": 0}, "stopping": {"max_tokens": 8}}'
# {"request_id":"curl-1","model":"demo","prompt":{"num_tokens":4,...},
#  "choices":[{"index":0,"text":"...","token_ids":[...],"finish":{"reason":"FINISH_REASON_LENGTH"},...}],
#  "usage":{"prompt_tokens":4,"completion_tokens":8,"total_tokens":12,...}}

show "Streaming Generate: Server-Sent Events, one GenerateStreamResponse per event"
curl -sSN "$BASE/api/v1/generate:stream" -d '{
  "model": "demo", "text": "The lighthouse keeper",
  "sampling": {"temperature": 0}, "stopping": {"max_tokens": 4}}'
# data: {"request_id":"…","model":"demo","prompt":{"num_tokens":4,…}}
# data: {"request_id":"…","model":"demo","delta":{"index":0,"text":" bow","token_ids":[575],…}}
# …   (the choice's last delta carries "finish")
# data: {"request_id":"…","model":"demo","end":{"usage":{…}}}
# No [DONE]: the `end` event is the end; a stream that stops without it failed (the
# grpc-status trailer says why, for clients that read HTTP trailers).

show "Chat, unary"
curl -sS "$BASE/api/v1/chat" -d '{
  "model": "demo", "messages": [{"role": "user", "content": "Hello!"}],
  "sampling": {"temperature": 0}, "stopping": {"max_tokens": 8}}'

show "Embed with all-MiniLM-L6-v2 (served by make serve beside the demo)"
curl -sS "$BASE/api/v1/embed" -d '{
  "model": "all-MiniLM-L6-v2", "inputs": [{"text": "The lighthouse keeper"}]}' | cut -c 1-200
echo
# {"request_id":"…","model":"all-MiniLM-L6-v2","data":[{"index":0,"embedding":{"shape":[384],
#  "values":[…]}}],"usage":{"prompt_tokens":6,"total_tokens":6}}

show "Tokenize, and the model list (GET)"
curl -sS "$BASE/api/v1/tokenize" -d '{"model": "demo", "text": "Hello!"}'
echo
curl -sS "$BASE/api/v1/models"

show "Errors: google.rpc.Status JSON with the HTTP status of the gRPC code"
curl -sS -w '\nHTTP %{http_code}\n' "$BASE/api/v1/generate" -d '{"model": "nope", "text": "x"}'
# {"code":5,"message":"The model `nope` does not exist. Valid aliases: demo","details":[
#   {"@type":"type.googleapis.com/google.rpc.BadRequest","field_violations":[{"field":"model",…}]}]}
# HTTP 404
curl -sS -w '\nHTTP %{http_code}\n' "$BASE/api/v1/generate" -d '{"text": "x", "sampling": {"temperature": -1}}'
# {"code":3,"message":"temperature must be in [0, 2.0], got -1.0","details":[…"field":"temperature"…]}
# HTTP 400
curl -sS -w '\nHTTP %{http_code}\n' "$BASE/api/v1/embed" -d '{"model": "demo", "inputs": [{"text": "x"}]}'
# {"code":12,"message":"The model does not support Embeddings API","details":[…]}
# HTTP 501 (the demo chat model does not embed)
curl -sS -w '\nHTTP %{http_code}\n' "$BASE/api/v1/generate" -d '{"max_tokens": "abc"'
# Malformed JSON is refused by Envoy itself: HTTP 400, text/plain.
