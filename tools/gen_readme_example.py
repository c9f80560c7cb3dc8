"""Write the README's and the API page's example answers from a real server of a freshly trained default run.

    python tools/gen_readme_example.py            # train, serve, ask, rewrite the blocks between the markers
    python tools/gen_readme_example.py --check    # exit 1 when a committed block differs from the real answer

It does what a newcomer does: trains the default run (`python -m training`, as `make run` does) into a
temporary model directory, starts `python -m service` on it, sends the documented requests, and writes each
command with its answer between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in README.md and docs/api.md.
tests/docs/test_readme_example.py compares the committed answers with a real one of the same kind.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
README = REPO_DIR / "README.md"
API_PAGE = REPO_DIR / "docs" / "api.md"
KAGGLE_SAMPLE = "data/kaggle-test-sample.csv"

PASSENGER = '{"pclass": 3, "fare": 7.25, "age": 22}'
JSON_COMMAND = (
    f"curl -s localhost:8000/predict -H 'content-type: application/json' -d '{PASSENGER}' | python3 -m json.tool"
)
CSV_COMMAND = (
    f"curl -sS localhost:8000/predict -H 'content-type: text/csv' -H 'accept: text/csv' --data-binary @{KAGGLE_SAMPLE}"
)
# Which blocks go into which files.
TARGETS = {"example": (README, API_PAGE), "csv-example": (API_PAGE,)}


@dataclass(frozen=True)
class Answers:
    """What the server answered to the documented requests."""

    json_text: str  # the /predict answer, as `python3 -m json.tool` prints it
    csv_text: str  # the submission file


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def train_default(out: Path) -> None:
    """Train the default run into `out`, as `make run` does (the trainer's defaults, data/titanic.csv)."""
    command = [sys.executable, "-m", "training", "--out", str(out), "--quiet"]
    done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"training failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")


@contextmanager
def serve(model_dir: Path, log_path: Path, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """`python -m service` on the model directory and a free loopback port; yields its URL once /ready is 200."""
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": str(port), "ACCESS_LOG": "0"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not become ready:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(url: str, body: bytes, content_type: str, accept: str) -> str:
    """POST a body and return the answer's text (a non-2xx answer raises)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type, "Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        text: str = response.read().decode("utf-8")
        return text


def ask(url: str) -> Answers:
    """Send the two documented requests to a running service."""
    answer = post(f"{url}/predict", PASSENGER.encode(), "application/json", "*/*")
    sample = (REPO_DIR / KAGGLE_SAMPLE).read_bytes()
    submission = post(f"{url}/predict", sample, "text/csv", "text/csv")
    return Answers(json_text=json.dumps(json.loads(answer), indent=4), csv_text=submission.rstrip("\n"))


def real_answers() -> Answers:
    """Train the default run in a temporary directory, serve it, and ask."""
    with tempfile.TemporaryDirectory(prefix="readme-example-") as tmp:
        models = Path(tmp) / "models"
        train_default(models)
        with serve(models, Path(tmp) / "service.log") as url:
            return ask(url)


def blocks(answers: Answers) -> dict[str, str]:
    """Each marker's block: the command and its answer, as a console session."""
    return {
        "example": f"```console\n$ {JSON_COMMAND}\n{answers.json_text}\n```",
        "csv-example": f"```console\n$ {CSV_COMMAND}\n{answers.csv_text}\n```",
    }


def between(text: str, name: str) -> str:
    """The text between a marker pair (without the markers' own lines)."""
    begin, end = f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"markers <!-- {name}:begin/end --> not found")
    return text.split(begin, 1)[1].split(end, 1)[0]


def replace_between(text: str, name: str, block: str) -> str:
    """The text with the block between a marker pair replaced."""
    begin, end = f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"
    head, rest = text.split(begin, 1) if begin in text else text.split(begin.rstrip("\n"), 1)
    tail = rest.split(end, 1)[1] if end in rest else rest.split(end.lstrip("\n"), 1)[1]
    return f"{head}{begin}{block}{end}{tail}"


def answer_in(block: str) -> str:
    """The answer part of a console block: the lines after the `$ command` line, before the closing fence."""
    lines = block.strip().splitlines()
    if len(lines) < 3 or not lines[1].startswith("$ ") or lines[-1] != "```":
        raise ValueError(f"not a console block of one command and its answer:\n{block}")
    return "\n".join(lines[2:-1])


# Another CPU may round the trained weights differently in the last bits (the docs say so): probabilities may
# then differ by this much, and the versions (hashes of the weights) with them.
OTHER_CPU_TOLERANCE = 1e-4


def differences(name: str, committed: str, real: str) -> list[str]:
    """Why a committed answer is not the real one ([] when it is); the run id, a time stamp, and the request's id,
    generated for each request, may differ (each prediction's id must still be `<request id>/<row>`)."""
    if name == "csv-example":
        return [] if committed == real else [f"submission differs:\n{committed}\n!=\n{real}"]
    shown, got = json.loads(committed), json.loads(real)
    problems = []
    if sorted(shown) != sorted(got) or sorted(shown["models"]) != sorted(got["models"]):
        return [f"answer's shape differs: {sorted(shown)} / {sorted(got)}"]
    for answer in (shown, got):
        ids = [row.get("id") for row in answer["predictions"]]
        if ids != [f"{answer['request_id']}/{i}" for i in range(len(ids))]:
            problems.append(f"prediction ids {ids} are not <request id>/<row> of {answer['request_id']!r}")
    without_ids = [[{k: v for k, v in row.items() if k != "id"} for row in a["predictions"]] for a in (shown, got)]
    exact = without_ids[0] == without_ids[1]
    for model, info in got["models"].items():
        if exact and shown["models"][model]["version"] != info["version"]:
            problems.append(f"{model}: version {shown['models'][model]['version']} != {info['version']}")
        if not shown["models"][model].get("run_id"):
            problems.append(f"{model}: no run_id")
    for shown_row, got_row in zip(shown["predictions"], got["predictions"], strict=True):
        for model, answer in got_row.items():
            if model == "id":
                continue
            mine = shown_row[model]
            if mine["survived"] != answer["survived"]:
                problems.append(f"{model}: survived {mine['survived']} != {answer['survived']}")
            if abs(mine["survival_probability"] - answer["survival_probability"]) > OTHER_CPU_TOLERANCE:
                problems.append(
                    f"{model}: probability {mine['survival_probability']} != {answer['survival_probability']}"
                )
    return problems


def is_current(text: str, name: str, wanted: str) -> bool:
    """The committed block shows the same command and answer (the run id aside), so rewriting it is only churn."""
    try:
        committed = between(text, name)
        same_command = committed.splitlines()[:2] == wanted.splitlines()[:2]
        return same_command and not differences(name, answer_in(committed), answer_in(wanted))
    except (ValueError, KeyError, json.JSONDecodeError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Rewrite the blocks, or with --check compare them with a real answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed block is not the real one")
    args = parser.parse_args(argv)
    wanted = blocks(real_answers())
    stale: list[str] = []
    for name, paths in TARGETS.items():
        texts = {path: path.read_text(encoding="utf-8") for path in paths}
        if args.check:
            for path, text in texts.items():
                problems = differences(name, answer_in(between(text, name)), answer_in(wanted[name]))
                stale.extend(f"{path.relative_to(REPO_DIR)} ({name}): {problem}" for problem in problems)
        elif all(is_current(text, name, wanted[name]) for text in texts.values()):
            print(f"{name}: current everywhere (only the run id would change): kept")
        else:  # every copy of a block is rewritten together, so the copies stay the same
            for path, text in texts.items():
                path.write_text(replace_between(text, name, wanted[name]), encoding="utf-8")
                print(f"wrote {name} into {path.relative_to(REPO_DIR)}")
    if stale:
        print("differs from a real answer (run: python tools/gen_readme_example.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
