# protoserve: CPU image by default. For CUDA: --build-arg BASE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
# (and install the `gpu` extra); the rest is the same.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir torch==2.13.0
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY engine ./engine
COPY service ./service
COPY rest_bridge ./rest_bridge
RUN pip install --no-cache-dir . && protoserve demo-model /opt/models/demo

FROM ${BASE}
RUN useradd --create-home --uid 10001 protoserve
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=protoserve /opt/models /opt/models
ENV PATH=/opt/venv/bin:$PATH \
    MODEL_NAME=/opt/models/demo \
    PROTOSERVE_SERVED_MODEL_NAME=demo \
    PROTOSERVE_LOG_FORMAT=json
USER protoserve
EXPOSE 8000 50051
ENTRYPOINT ["protoserve"]
CMD ["serve"]
