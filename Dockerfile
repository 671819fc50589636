# syntax=docker/dockerfile:1
# Two stages: dependencies are installed before the source is copied, so editing code
# rebuilds only the last layers; the runtime image carries no compiler and runs as `recs`.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU build of torch: the CUDA one is several GB and this service does not need it.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install -r requirements.txt
COPY README.md ./
COPY common ./common
COPY storage ./storage
COPY embeddings ./embeddings
COPY indexing ./indexing
COPY experiments ./experiments
COPY service ./service
COPY workers ./workers
COPY devstack ./devstack
COPY recs_client ./recs_client
COPY recs ./recs
RUN pip install --no-deps .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 recs \
 && mkdir -p /app/index_data /app/model_cache && chown recs:recs /app/index_data /app/model_cache
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
USER recs
# The int8 model (EMBEDDING_RUNTIME=onnx-int8, EMBEDDING_CACHE_DIR=model_cache) is exported
# here, once, from the packaged weights: no container exports it again at its first encode.
RUN python -c "from embeddings.encoder import make_encoder as m; m('all-MiniLM-L6-v2', runtime='onnx-int8').encode(['ready'])"
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=2)"
CMD ["sh", "-c", "exec uvicorn --factory service.api.main:create_app --host \"$HOST\" --port \"$PORT\" --no-access-log"]
