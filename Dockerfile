# protoserve: CPU image by default, with the `audio` extra (PyAV and soxr: their wheels
# bundle FFmpeg and libsoxr, so the image needs no system packages for speech).
#   docker build -t protoserve .
# CUDA: another base (Python is installed into it), the CUDA torch wheels, the gpu extra:
#   docker build -t protoserve:cuda --build-arg BASE=nvidia/cuda:12.8.1-devel-ubuntu24.04 \
#       --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#       --build-arg EXTRAS=audio,gpu .
# Why -devel and not -runtime: flashinfer compiles its attention kernels just in time, on
# first use, with nvcc and the CUDA headers, into ~/.cache/flashinfer; a -runtime base has
# neither, so the first CUDA forward pass would fail there. Either keep a -devel base (as
# above; the home of uid 10001 holds the cache), or install flashinfer's precompiled
# kernels (its jit-cache / cubin wheels for this CUDA and torch) into the venv.
# On CPU the paged-decode kernel (engine/attention/csrc) and the fused element-wise ops
# (engine/models/csrc) are also built on first use, with gcc, which the slim base lacks: the
# engine then logs the reason and uses SDPA and torch ops (slower decode, same results). Add
# gcc to the final stage to get them.
# The build stage installs into /opt/venv and writes the demo model and Envoy's descriptor
# set (/opt/protoserve/protoserve.binpb, read by deploy/gateway.yaml); the final stage
# copies those and runs as uid 10001. Commands: serve (default), grpc, bridge.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=audio
RUN command -v python3 >/dev/null || (apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*)
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1
# torch first, from the index that matches the base (CPU wheels by default).
RUN pip install --index-url ${TORCH_INDEX} torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY engine ./engine
COPY service ./service
COPY rest_bridge ./rest_bridge
RUN pip install ".${EXTRAS:+[${EXTRAS}]}" && protoserve demo-model /opt/models/demo
# grpcio-tools only in a throwaway venv: the descriptor set ships, the compiler does not.
RUN python3 -m venv /opt/tools \
    && /opt/tools/bin/pip install grpcio-tools==1.85.1 googleapis-common-protos \
    && /opt/tools/bin/python proto/build.py --descriptor-set /opt/protoserve/protoserve.binpb

FROM ${BASE}
RUN command -v python3 >/dev/null || (apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*)
RUN useradd --create-home --uid 10001 protoserve
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/models /opt/models
COPY --from=build /opt/protoserve /opt/protoserve
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODEL_NAME=/opt/models/demo \
    PROTOSERVE_SERVED_MODEL_NAME=demo \
    PROTOSERVE_LOG_FORMAT=json
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 8000 50051
# exec form: protoserve is PID 1 and gets SIGTERM itself (drain, then exit 0).
ENTRYPOINT ["protoserve"]
CMD ["serve"]
