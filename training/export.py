"""ONNX export: each variant of a run as one self-contained float64 graph, raw passengers in, probability out.

The graph repeats the served computation: the stored fills for a missing Fare or Age, the stored
standardization, then the folded affine layers (BatchNorm already folded into its Linear, so the graph
has no BatchNormalization node), ReLU between them, and the sigmoid. A runtime that loads the file needs
nothing else from this project. Needs the `export` extra (onnx, and onnxruntime to check the result).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from survival.checkpoint import CheckpointError, current_run_dir
from survival.features import AGE_INDEX, FARE_INDEX, FEATURES, FILLED_FIELDS, PCLASS_INDEX, PCLASS_VALUES, Preprocessing
from survival.served import Layers, load_served_run
from survival.variants import VariantName

ONNX_FILE: Final[str] = "model.onnx"
MANIFEST_FILE: Final[str] = "onnx.json"
OPSET: Final[int] = 17
IR_VERSION: Final[int] = 8  # the IR version that goes with opset 17, which every current runtime reads
INPUT_NAME: Final[str] = "features"
OUTPUT_NAME: Final[str] = "survival_probability"


def constant(name: str, values: Any, dtype: Any = np.float64) -> TensorProto:
    """An initializer holding `values`."""
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name=name)


def preprocessing_nodes(prep: Preprocessing) -> tuple[list[onnx.NodeProto], list[TensorProto], str]:
    """Nodes that turn raw rows into model inputs as survival.features.preprocess does; returns the output's name.

    A missing (NaN) Fare or Age is replaced by its stored fill: row c - 1 of a (3, 3) table holds Pclass c's
    median fare and the median age, gathered by each row's Pclass (which the input rules make 1, 2 or 3).
    """
    width = len(FEATURES)
    fills = np.zeros((len(PCLASS_VALUES), width))
    fills[:, FARE_INDEX] = prep.fare_fill
    fills[:, AGE_INDEX] = prep.age_fill
    fillable = np.zeros((1, width), dtype=bool)
    fillable[0, list(FILLED_FIELDS)] = True
    initializers = [
        constant("fills", fills),
        constant("fillable", fillable, bool),
        constant("pclass_column", PCLASS_INDEX, np.int64),
        constant("first_class", PCLASS_VALUES[0], np.int64),
    ]
    nodes = [
        helper.make_node("Gather", [INPUT_NAME, "pclass_column"], ["pclass"], axis=1),
        helper.make_node("Cast", ["pclass"], ["pclass_int"], to=TensorProto.INT64),
        helper.make_node("Sub", ["pclass_int", "first_class"], ["fill_row"]),
        helper.make_node("Gather", ["fills", "fill_row"], ["row_fills"], axis=0),
        helper.make_node("IsNaN", [INPUT_NAME], ["is_nan"]),
        helper.make_node("And", ["is_nan", "fillable"], ["missing"]),
        helper.make_node("Where", ["missing", "row_fills", INPUT_NAME], ["filled"]),
    ]
    if not prep.standardize:
        return nodes, initializers, "filled"
    if prep.mean is None or prep.std is None:
        raise CheckpointError("preprocessing says standardize but has no fitted mean/std")
    initializers += [constant("mean", [prep.mean]), constant("std", [prep.std])]
    nodes += [
        helper.make_node("Sub", ["filled", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["standardized"]),
    ]
    return nodes, initializers, "standardized"


def build_graph(layers: Layers, prep: Preprocessing, name: VariantName, properties: dict[str, str]) -> onnx.ModelProto:
    """The whole model as one ONNX graph: `features` (N, 3) float64 in, `survival_probability` (N,) out."""
    nodes, initializers, h = preprocessing_nodes(prep)
    last = len(layers) - 1
    for i, (weight, bias) in enumerate(layers):
        initializers += [constant(f"layer{i}.weight", weight), constant(f"layer{i}.bias", bias)]
        nodes += [
            helper.make_node("MatMul", [h, f"layer{i}.weight"], [f"layer{i}.matmul"]),
            helper.make_node("Add", [f"layer{i}.matmul", f"layer{i}.bias"], [f"layer{i}.out"]),
        ]
        h = f"layer{i}.out"
        if i < last:
            nodes.append(helper.make_node("Relu", [h], [f"layer{i}.relu"]))
            h = f"layer{i}.relu"
    initializers.append(constant("output_axis", [1], np.int64))
    nodes += [
        helper.make_node("Sigmoid", [h], ["probability_column"]),
        helper.make_node("Squeeze", ["probability_column", "output_axis"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        f"titanic_survival_{name}",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, ["N", len(FEATURES)])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, ["N"])],
        initializer=initializers,
        doc_string=f"Columns {', '.join(FEATURES)}; NaN for an unknown Fare or Age. Output: survival probability.",
    )
    model = helper.make_model(
        graph,
        producer_name="titanic-bn-service",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, properties)
    onnx.checker.check_model(model, full_check=True)
    return model


def run_dir_of(model_dir: Path, run_id: str | None) -> Path:
    """The directory of `run_id`, or of the current run."""
    if run_id is None:
        return current_run_dir(model_dir)
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise CheckpointError(f"{run_id!r} is not a run id")
    path = model_dir / "runs" / run_id
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run")
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: never a half-written file."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: cannot write ({exc.strerror})") from None


def export_run(model_dir: Path, run_id: str | None = None) -> Path:
    """Write model.onnx for each variant of the run and the manifest with their sha256; returns the manifest."""
    run_dir = run_dir_of(model_dir, run_id)
    served = load_served_run(run_dir)
    entries: dict[str, dict[str, Any]] = {}
    for name, checkpoint in served.items():
        meta = checkpoint.metadata
        properties = {
            "run_id": meta.run_id,
            "variant": name,
            "version": meta.version,
            "preprocessing": meta.preprocessing.model_dump_json(),
        }
        data = build_graph(checkpoint.layers, meta.preprocessing, name, properties).SerializeToString()
        write_atomically(run_dir / name / ONNX_FILE, data)
        entries[name] = {
            "file": f"{name}/{ONNX_FILE}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "version": meta.version,
        }
    manifest = {
        "run_id": next(iter(served.values())).metadata.run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "opset": OPSET,
        "onnx": onnx.__version__,
        "input": {"name": INPUT_NAME, "datatype": "double", "shape": ["N", len(FEATURES)], "columns": list(FEATURES)},
        "output": {"name": OUTPUT_NAME, "datatype": "double", "shape": ["N"]},
        "models": entries,
    }
    path = run_dir / MANIFEST_FILE
    write_atomically(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


def export_parser() -> argparse.ArgumentParser:
    """The parser of the `export` command."""
    parser = argparse.ArgumentParser(
        prog="python -m training export",
        description=f"Write {ONNX_FILE} for each variant of a run into the run's directory, with a manifest "
        f"({MANIFEST_FILE}) of their sha256. Input: {INPUT_NAME} (N, 3) float64 ({', '.join(FEATURES)}, NaN for "
        f"an unknown Fare or Age); output: {OUTPUT_NAME} (N,).",
    )
    parser.add_argument("run_id", nargs="?", default=None, help="a run under DIR/runs (default: the current run)")
    parser.add_argument("--out", type=Path, default=Path("models"), help="model directory (default: %(default)s)")
    return parser


def run_export_command(argv: Sequence[str]) -> int:
    """Export a run and print where the files went."""
    args = export_parser().parse_args(argv)
    manifest_path = export_run(args.out, args.run_id).resolve()
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for name, entry in manifest["models"].items():
        print(f"{name}: {manifest_path.parent / entry['file']} sha256 {entry['sha256'][:12]}")
    print(f"wrote {manifest_path}")
    return 0
