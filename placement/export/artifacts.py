"""Per unit, the files it runs: the ONNX piece at the plan's batch (prepared: static shapes,
shape maths folded, as profiled), its I/O description, and per runtime either the TVM library
for the hardware class's target or ONNX Runtime session settings.

Bundle layout (relative to the bundle root):
  artifacts/<piece>/b<batch>/model.onnx            the prepared piece
  artifacts/<piece>/b<batch>/io.json               input and output names, shapes, dtypes
  artifacts/<piece>/b<batch>/<hardware>/<runtime>/model.so       tvm, tvm-tuned
  artifacts/<piece>/b<batch>/<hardware>/<runtime>/session.json   onnxruntime (-cuda, -trt), openvino
  artifacts/<piece>/b<batch>/<hardware>/<runtime>/target.json    tvm: the target it was built for
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from placement.export.errors import ExportError
from placement.export.layout import Unit, file_name
from profiles.gpu_runtimes import GPU_RUNTIMES, PRECISION, PROVIDER_OPTIONS, PROVIDERS

TVM_RUNTIMES = ("tvm", "tvm-tuned")


@dataclass
class Artifact:
    """The files of one unit's artifact, relative to the bundle root."""

    unit: Unit
    onnx: str
    io: dict
    library: str | None = None
    session: str | None = None
    target_file: str | None = None
    original_onnx: Path | None = None     # the piece's source file (symbolic batch, for Triton)
    symbolic_batch: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        folder = str(Path(self.onnx).parent)
        return [f for f in (self.onnx, f"{folder}/io.json", self.library, self.session,
                            self.target_file) if f]


def piece_sources(ws) -> dict:
    return {source.piece: source for source in ws.pieces}


def source_for(ws, sources: dict, unit: Unit):
    """The PieceSource of a unit: a whole model, or a head/tail (split here when the spec's
    pieces do not include that cut)."""
    if unit.piece in sources:
        return sources[unit.piece]
    if "@" in unit.piece and unit.model in sources:
        from profiles.split import SplitError, split_sources

        tensor = unit.piece.split("@", 1)[1].rsplit(":", 1)[0]
        try:
            head, tail = split_sources(sources[unit.model], tensor)
        except SplitError as exc:
            raise ExportError(f"plan piece {unit.name}: {exc}") from None
        sources[head.piece], sources[tail.piece] = head, tail
        return sources[unit.piece]
    raise ExportError(f"plan piece {unit.name}: the spec has no model or piece {unit.piece!r}")


def at_batch(source, batch: int):
    """The piece's source at the plan's batch (re-batched safely, as the profiler does)."""
    from profiles.batching import batch_plan
    from profiles.onnx_prep import model_digest

    problems: list = []
    for b, src, _digest in batch_plan(source, model_digest(source.onnx_path), [batch], "export", problems):
        if b == batch:
            return src
    reason = problems[0].message if problems else "no such batch"
    raise ExportError(f"{source.piece}: cannot export at batch {batch}: {reason}")


def io_description(model: onnx.ModelProto) -> dict:
    from profiles.onnx_prep import graph_inputs

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        return {"name": value.name,
                "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim],
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name}

    return {"inputs": [describe(v) for v in graph_inputs(model)],
            "outputs": [describe(v) for v in model.graph.output]}


def session_settings(hardware: str, runtime: str = "onnxruntime") -> dict:
    """Session settings for a piece on `hardware`: ONNX Runtime's threads (the class's cores) and
    execution providers, or OpenVINO's CPU plugin properties as the profiler measured them. The
    GPU runtimes name their providers in priority order and the options the profiler measured
    with (`profiles.gpu_runtimes`: TensorRT builds an fp16 engine; CUDA fp32)."""
    from profiles.hardware import get_hardware

    try:
        hw = get_hardware(hardware)
        cores, gpu = hw.cores, hw.kind == "gpu"
    except KeyError:
        cores, gpu = 1, False
    if runtime == "openvino":
        from profiles.openvino_adapter import compile_config

        return {"runtime": "openvino", "device": "CPU", "properties": compile_config(cores)}
    if runtime in GPU_RUNTIMES:
        return {"runtime": "onnxruntime", "execution_providers": PROVIDERS[runtime],
                "provider_options": PROVIDER_OPTIONS[runtime], "precision": PRECISION[runtime],
                "intra_op_num_threads": 1, "inter_op_num_threads": 1,
                "graph_optimization_level": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL"}
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu else ["CPUExecutionProvider"]
    return {"runtime": "onnxruntime", "execution_providers": providers, "intra_op_num_threads": cores,
            "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL",
            "execution_mode": "ORT_SEQUENTIAL"}


def build_artifact(ws, sources: dict, unit: Unit, root: Path, prepared_cache: dict,
                   progress=None) -> tuple[Artifact, dict]:
    """Write one unit's artifact under `root`; returns it and the compile info (TVM) or {}."""
    from profiles.batching import batch_mode
    from profiles.onnx_prep import OnnxPrepError, prepare_onnx

    source = source_for(ws, sources, unit)
    folder = Path("artifacts") / file_name(unit.piece) / f"b{unit.batch}"
    onnx_rel = folder / "model.onnx"
    key = (unit.piece, unit.batch)
    if key not in prepared_cache:
        batched = at_batch(source, unit.batch)
        try:
            prepared = prepare_onnx(batched.onnx_path, batched.input_shapes)
        except OnnxPrepError as exc:
            raise ExportError(str(exc)) from None
        prepared.graph.name = unit.piece
        (root / folder).mkdir(parents=True, exist_ok=True)
        onnx.save(prepared, str(root / onnx_rel))
        io = io_description(prepared)
        (root / folder / "io.json").write_text(json.dumps(io, indent=2) + "\n")
        prepared_cache[key] = (prepared, batched.input_shapes, io)
    prepared, shapes, io = prepared_cache[key]
    artifact = Artifact(unit=unit, onnx=str(onnx_rel), io=io, original_onnx=Path(source.onnx_path),
                        symbolic_batch=batch_mode(source) == "symbolic" and "@" not in unit.piece)
    runtime_dir = folder / file_name(unit.hardware) / unit.runtime
    (root / runtime_dir).mkdir(parents=True, exist_ok=True)
    info: dict = {}
    if unit.runtime in TVM_RUNTIMES:
        from placement.export.tvm_build import compile_library

        if progress:
            progress(f"compiling {unit.piece} for {unit.hardware} ({unit.runtime})")
        info = compile_library(prepared, shapes, unit.hardware, unit.runtime, root / runtime_dir / "model.so")
        artifact.library = str(runtime_dir / "model.so")
        artifact.target_file = str(runtime_dir / "target.json")
        (root / artifact.target_file).write_text(json.dumps(
            {"target": info["target"], "cross_compiler": info["cross_compiler"],
             "tuning_database": info["tuning_database"], "runtime": unit.runtime}, indent=2) + "\n")
        if info.get("note"):
            artifact.notes.append(f"{unit.piece} on {unit.hardware}: {info['note']}")
    else:
        artifact.session = str(runtime_dir / "session.json")
        (root / artifact.session).write_text(json.dumps(session_settings(unit.hardware, unit.runtime), indent=2) + "\n")
    return artifact, info
