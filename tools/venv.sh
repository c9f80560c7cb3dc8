#!/usr/bin/env bash
# Make (or update) the project's virtual environment; called by the Makefile, usable alone:
#   tools/venv.sh VENV EXTRAS STAMP      e.g. tools/venv.sh .venv train .venv/.installed-run
# PYTHON (default python3.11) makes the venv; TORCH_INDEX_URL is where CPU-only torch comes from.
# A failure never leaves a half-made venv behind: a venv this call created is removed again, and an existing one
# loses its stamp, so the next `make` tries again instead of trusting it.
set -euo pipefail

venv=$1 extras=$2 stamp=$3
python=${PYTHON:-python3.11}
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
pip_version=26.3 # as the Dockerfile's PIP_VERSION
need=3.11        # pyproject.toml: requires-python = ">=3.11,<3.12"

say() { printf '%s\n' "$*" >&2; }
how="Install Python $need (Debian/Ubuntu: apt install python$need python$need-venv; or pyenv install $need)
       and name it if it is not on PATH as python$need: make PYTHON=/path/to/python$need ..."

if ! command -v "$python" >/dev/null 2>&1; then
    say "error: $python not found; this project needs Python $need."
    say "       $how"
    exit 1
fi
if ! version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); then
    say "error: $python is on PATH but does not run; this project needs Python $need."
    say "       $how"
    exit 1
fi
if [ "$version" != "$need" ]; then
    say "error: $python is Python $version; this project needs Python $need (its pins are for $need only)."
    say "       $how"
    exit 1
fi

# A venv made earlier by another Python (or broken) is made again, not trusted.
if [ -e "$venv" ] && ! "$venv/bin/python" -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))" 2>/dev/null; then
    say "note: $venv is not a working Python $need venv; making it again"
    rm -rf "$venv"
fi

created=0
cleanup() {
    status=$?
    if [ "$status" -ne 0 ]; then
        rm -f "$stamp"
        if [ "$created" = 1 ]; then
            rm -rf "$venv"
            say "error: the install failed (exit $status); removed the half-made $venv. Fix the cause above and run make again."
        else
            say "error: the install failed (exit $status); $venv is left as it was, unstamped: make tries again next time."
        fi
    fi
}
trap cleanup EXIT

if [ ! -x "$venv/bin/python" ]; then
    created=1
    say "== creating $venv with $python (Python $version)"
    if ! "$python" -m venv "$venv"; then
        say "error: '$python -m venv' failed (Debian/Ubuntu: apt install python$need-venv)."
        exit 1
    fi
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check)
say "== pip $pip_version"
"${pip[@]}" install --progress-bar on "pip==$pip_version"
if [[ ",$extras," == *,train,* ]]; then
    # CPU-only torch first, from PyTorch's CPU index as the Dockerfile takes it: PyPI's torch for Linux is the
    # CUDA build (gigabytes). 2.13.0+cpu sorts above 2.13.0, so it wins, and it satisfies constraints.txt's
    # torch==2.13.0, so the next step keeps it and installs torch's own dependencies from the usual index.
    say "== torch 2.13.0, CPU build (about 200 MB the first time), from $torch_index"
    "${pip[@]}" install --progress-bar on --no-deps -c constraints.txt --extra-index-url "$torch_index" "torch==2.13.0"
fi
say "== the project and its pinned dependencies (extras: ${extras:-none}); a minute or two the first time"
"${pip[@]}" install --progress-bar on -c constraints.txt -e ".${extras:+[$extras]}"
"${pip[@]}" check
touch "$stamp"
say "== $venv ready ($extras)"
