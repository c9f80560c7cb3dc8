# One image, every role: the API (the default command), the trainer and the study (`python -m training ...`).
#   docker build -t titanic-bn-service .
# CPU-only torch comes from PyTorch's CPU wheel index (TORCH_INDEX_URL); everything else from PyPI, pinned by
# constraints.txt, the project's one lock file. Layers run from the least to the most often changed: torch,
# the other dependencies, the data, the code; a code change rebuilds a layer of a few hundred kB.

# ---- requirements: the runtime dependency list of pyproject.toml (no dev extra). Its own stage, so that an
# edit of pyproject.toml that leaves the dependencies alone does not invalidate the dependency layer.
FROM python:3.11-slim AS requirements
COPY pyproject.toml /tmp/
RUN python -c "import tomllib; print(*tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
    > /tmp/requirements.txt

# ---- deps: /opt/venv with torch (CPU) and the pinned runtime dependencies ----------------------------------
FROM python:3.11-slim AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install --upgrade pip
WORKDIR /build
COPY constraints.txt ./
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0+cpu
# 2.13.0+cpu satisfies constraints.txt's torch==2.13.0. The wheel's C++ headers and C++ test binaries (about
# 145 MB) serve only C++ extension builds and torch's own tests, neither of which this image runs.
RUN pip install -c constraints.txt --extra-index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include /opt/venv/lib/python3.11/site-packages/torch/test
COPY --from=requirements /tmp/requirements.txt ./
RUN pip install -c constraints.txt -r requirements.txt

# ---- project: the three packages (and their metadata), installed non-editable into a folder of their own ---
FROM deps AS project
COPY pyproject.toml README.md ./
COPY survival survival
COPY training training
COPY service service
RUN pip install --no-deps --target /opt/project .

# ---- runtime: the base image, the venv, the data set and the code; no build tools, caches or source tree ---
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODEL_DIR=/models \
    WEB_CONCURRENCY=1

# A fixed non-root uid. /models is created owned by it: Docker copies that owner into a new, empty named volume
# mounted there, so the trainer can write its checkpoints.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /models && chown app:app /models

COPY --from=deps /opt/venv /opt/venv
# The trainer's default --data is data/titanic.csv, relative to this working directory.
WORKDIR /app
COPY data/titanic.csv data/titanic.csv
COPY --from=project /opt/project/ /opt/venv/lib/python3.11/site-packages/
RUN PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 pip check

USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
# uvicorn reads WEB_CONCURRENCY (worker processes) itself; each worker loads torch and both models.
CMD ["uvicorn", "service.main:app", "--host", "0.0.0.0", "--port", "8000"]
