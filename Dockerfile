# Two images from one file (build targets):
#   api      (the default, last stage): the service, with only the API's runtime dependencies (no torch, pandas
#            or scikit-learn).                                   docker build -t titanic-bn-api .
#   trainer: the trainer, the study and the evaluation (`python -m training ...`), with CPU torch on top.
#                                                                docker build --target trainer -t titanic-bn-trainer .
# Dependencies are pyproject.toml's lists: `dependencies` (the API) and the `train` extra (the trainer), each
# pinned by constraints.txt, the project's one lock file. CPU-only torch comes from PyTorch's CPU wheel index
# (TORCH_INDEX_URL). Layers run from the least to the most often changed: pip, torch, the other dependencies,
# the data, the code; a code change rebuilds a layer of a few hundred kB.

# The base image, pinned by digest (Docker Hub's python:3.11-slim-bookworm, linux/amd64 + arm64 index). A build
# arg so that an offline test can substitute a local stand-in: `--build-arg PYTHON_IMAGE=python:3.11-slim`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# ---- requirements: the two dependency lists of pyproject.toml. Their own stage, so that an edit of
# pyproject.toml that leaves the dependencies alone does not invalidate the dependency layers.
FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml /tmp/
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
open('/tmp/api.txt', 'w').write('\n'.join(p['dependencies']) + '\n'); \
open('/tmp/train.txt', 'w').write('\n'.join(p['optional-dependencies']['train']) + '\n')"

# ---- venv: an empty /opt/venv with a pinned pip ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS venv
ARG PIP_VERSION=26.3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install "pip==${PIP_VERSION}"
WORKDIR /build
COPY constraints.txt ./

# ---- api-deps: the API's runtime dependencies only ---------------------------------------------------------
FROM venv AS api-deps
COPY --from=requirements /tmp/api.txt ./
RUN pip install -c constraints.txt -r api.txt

# ---- trainer-deps: torch (CPU) and every runtime dependency -------------------------------------------------
FROM venv AS trainer-deps
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0+cpu
# 2.13.0+cpu satisfies constraints.txt's torch==2.13.0. The wheel's C++ headers and C++ test binaries (about
# 145 MB) serve only C++ extension builds and torch's own tests, neither of which this image runs.
RUN pip install -c constraints.txt --extra-index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include /opt/venv/lib/python3.11/site-packages/torch/test
COPY --from=requirements /tmp/api.txt /tmp/train.txt ./
RUN pip install -c constraints.txt -r api.txt -r train.txt

# ---- project: the three packages (and their metadata), installed non-editable into a folder of their own ---
FROM venv AS project
COPY pyproject.toml README.md LICENSE ./
COPY survival survival
COPY training training
COPY service service
# The trainer package apart (/opt/training), so that the API image copies /opt/project without it.
RUN pip install --no-deps --target /opt/project . && mkdir /opt/training && mv /opt/project/training /opt/training/

# ---- runtime: what both images share: the non-root user and the environment --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    MODEL_DIR=/models
# A fixed non-root uid. /models and /data/store are created owned by it: Docker copies that owner into a new,
# empty named volume mounted there, so the trainer can write its checkpoints and the API its prediction store.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /models /data/store && chown app:app /models /data/store
WORKDIR /app

# ---- trainer ---------------------------------------------------------------------------------------------
FROM runtime AS trainer
COPY --from=trainer-deps /opt/venv /opt/venv
# The trainer's default --data is data/titanic.csv, relative to this working directory.
COPY data/titanic.csv data/titanic.csv
COPY --from=project /opt/project/ /opt/venv/lib/python3.11/site-packages/
COPY --from=project /opt/training/ /opt/venv/lib/python3.11/site-packages/
RUN pip check
USER app
CMD ["python", "-m", "training", "--if-missing", "--out", "/models", "--quiet"]

# ---- api-venv: the API's venv with the project, checked, then trimmed: pip and setuptools (the image installs
# nothing at run time) and NumPy's own test suite (nothing imports it).
FROM api-deps AS api-venv
COPY --from=project /opt/project/ /opt/venv/lib/python3.11/site-packages/
RUN pip check \
    && cd /opt/venv/lib/python3.11/site-packages \
    && find numpy -type d -name tests -prune -exec rm -rf {} + \
    && python -m pip uninstall --yes --quiet pip setuptools

# ---- api (the default target) ------------------------------------------------------------------------------
FROM runtime AS api
# The service and the package it shares with the trainer; not the trainer (it needs torch).
COPY --from=api-venv /opt/venv /opt/venv
# `python -m service` (the launcher: settings and checkpoints checked before any worker, graceful SIGTERM) on
# every interface of the container, port 8000; WEB_CONCURRENCY sets its worker processes. The prediction store
# (docs/store.md): an SQLite file in /data/store, a directory the non-root user owns (mount a volume there to keep
# it: the image's file system is read-only in compose and Kubernetes); STORE_URL=postgresql+psycopg://... for
# several replicas, STORE_URL=none to record nothing.
ENV HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=1 \
    STORE_URL=sqlite:////data/store/predictions.db
USER app
EXPOSE 8000
# A cheap probe: one bash process and one HTTP/1.0 request to /ready, not a new Python interpreter per check.
HEALTHCHECK --interval=2s --timeout=3s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ]"]
CMD ["python", "-m", "service"]
