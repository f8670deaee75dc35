"""The files each stage runs, made by the export bundle's artifact step (the prepared ONNX piece
at the plan's batch, its io.json, ONNX Runtime / OpenVINO session settings or a TVM library built
for this machine's class), and which stages cannot run here."""

from __future__ import annotations

import json
from pathlib import Path

from placement.export.artifacts import build_artifact, piece_sources
from placement.export.layout import Unit
from placement.verify.topology import Topology

RUNNABLE = ("onnxruntime", "openvino", "tvm", "tvm-tuned")


def cannot_run_here(topology: Topology, local_hardware: str) -> list[str]:
    """One line per stage this machine cannot stand in for: other hardware, or a runtime
    that is not installed."""
    import importlib.util

    lines = []
    for s in topology.stages.values():
        if s.hardware != local_hardware:
            lines.append(f"{s.name}: placed on {s.offer} ({s.hardware}); this machine is {local_hardware}")
        elif s.runtime not in RUNNABLE:
            lines.append(f"{s.name}: runtime {s.runtime} is not one verify runs")
        elif s.runtime == "openvino" and importlib.util.find_spec("openvino") is None:
            lines.append(f"{s.name}: runtime openvino is not installed here")
    return lines


def prepare_stages(ws, topology: Topology, folder: Path, threads: int, progress=None) -> dict:
    """Write every stage's artifact under `folder`; returns {stage: runner spec} for
    `edge_runner.Piece` (name, runtime, io, onnx, session | library, batch). ONNX Runtime runs
    with `threads` intra-op threads (the workers share this machine's cores)."""
    sources = piece_sources(ws)
    cache: dict = {}
    specs = {}
    for s in topology.stages.values():
        unit = Unit(s.name, s.piece, s.model, None, s.tier, s.offer, s.hardware, s.runtime,
                    s.tvm_target, s.batch)
        artifact, _info = build_artifact(ws, sources, unit, folder, cache, progress)
        spec = {"name": s.name, "runtime": s.runtime, "onnx": artifact.onnx,
                "io": str(Path(artifact.onnx).parent / "io.json"), "batch": s.batch}
        if artifact.library:
            spec["library"] = artifact.library
        if artifact.session:
            settings = json.loads((folder / artifact.session).read_text())
            if settings.get("runtime") == "onnxruntime":
                settings["intra_op_num_threads"] = threads
            session = Path(artifact.session).with_name(f"session-{threads}t.json")
            (folder / session).write_text(json.dumps(settings, indent=2) + "\n")
            spec["session"] = str(session)
        specs[s.name] = spec
    return specs
