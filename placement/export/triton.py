"""A Triton model repository per cloud pool: `<model>/config.pbtxt` and `<model>/1/model.onnx`.

Served by Triton's ONNX Runtime backend (`platform: "onnxruntime_onnx"`). A piece the plan runs
with `onnxruntime-trt` on a GPU pool gets the backend's TensorRT execution accelerator at fp16
(`optimization { execution_accelerators { gpu_execution_accelerator ... name: "tensorrt" } }`,
`precision_mode` FP16); `onnxruntime-cuda` is the backend's default on a KIND_GPU instance (the
CUDA execution provider), so it needs no accelerator. Where the piece's
ONNX file keeps a symbolic batch dimension, the repository holds that file, `max_batch_size` is
the plan's batch and the dynamic batcher prefers it; a piece whose batch is fixed in its graph
(a split tail, a fixed-batch export) is served as is (`max_batch_size: 0`, full dims).

Configs are parsed back with protobuf's `text_format` into a message type built from the field
names, numbers and types of Triton's `model_config.proto` (the subset written here): an unknown
field, a wrong type or a bad enum value fails the parse, as it would in Triton.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

from placement.export.artifacts import Artifact
from placement.export.layout import Pool, file_name

# runtimes the ONNX Runtime backend runs as the plan measured them (CPU, or its CUDA provider /
# TensorRT accelerator on a GPU pool); any other runtime gets ONNX Runtime instead
SERVED_AS_PLANNED = ("onnxruntime", "onnxruntime-cuda", "onnxruntime-trt")

TRITON_DTYPES = {"bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16",
                 "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64", "int8": "TYPE_INT8",
                 "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                 "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64"}


def triton_model_name(artifact: Artifact) -> str:
    return file_name(artifact.unit.name).replace(":", "_")


def link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link `src` to `dest` (same bytes, no extra space) or copy it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def config_text(artifact: Artifact, *, gpu: bool, queue_delay_us: int) -> str:
    """config.pbtxt for one piece (the plan's batch; a GPU pool runs instances on the GPU)."""
    unit, io = artifact.unit, artifact.io
    batching = artifact.symbolic_batch
    lines = [f'name: "{triton_model_name(artifact)}"', 'platform: "onnxruntime_onnx"',
             f"max_batch_size: {unit.batch if batching else 0}"]

    def tensors(kind: str, values: list[dict]) -> None:
        for v in values:
            dims = v["shape"][1:] if batching else v["shape"]
            lines.extend([f"{kind} {{", f'  name: "{v["name"]}"',
                          f"  data_type: {TRITON_DTYPES.get(v['dtype'], 'TYPE_INVALID')}",
                          f"  dims: [ {', '.join(str(d) for d in dims)} ]", "}"])

    tensors("input", io["inputs"])
    tensors("output", io["outputs"])
    lines.extend(["instance_group {", "  count: 1", f"  kind: {'KIND_GPU' if gpu else 'KIND_CPU'}", "}"])
    if gpu and unit.runtime == "onnxruntime-trt":
        lines.extend(["optimization {", "  execution_accelerators {",
                      "    gpu_execution_accelerator {", '      name: "tensorrt"',
                      '      parameters { key: "precision_mode" value: "FP16" }', "    }", "  }", "}"])
    if batching:
        # batch 1 gains nothing from waiting; a larger batch may wait up to the plan's queueing wait
        delay = queue_delay_us if unit.batch > 1 else 0
        lines.extend(["dynamic_batching {", f"  preferred_batch_size: [ {unit.batch} ]",
                      f"  max_queue_delay_microseconds: {delay}", "}"])
    return "\n".join(lines) + "\n"


def write_repository(pool: Pool, artifacts: list[Artifact], root: Path, folder: Path, *, gpu: bool,
                     queue_delay_us: int) -> list[str]:
    """Write the pool's model repository under `root/folder`; returns the files written."""
    written = []
    for artifact in artifacts:
        name = triton_model_name(artifact)
        model_dir = folder / name
        onnx_src = (artifact.original_onnx if artifact.symbolic_batch and artifact.original_onnx
                    else root / artifact.onnx)
        link_or_copy(Path(onnx_src), root / model_dir / "1" / "model.onnx")
        (root / model_dir / "config.pbtxt").write_text(
            config_text(artifact, gpu=gpu, queue_delay_us=queue_delay_us))
        written += [str(model_dir / "config.pbtxt"), str(model_dir / "1" / "model.onnx")]
    return written


# -- parsing back --------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _model_config_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    fdp = descriptor_pb2.FileDescriptorProto(name="placement_triton_model_config.proto",
                                             package="inference", syntax="proto3")
    dtype = fdp.enum_type.add(name="DataType")
    for number, name in enumerate(["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16",
                                   "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16",
                                   "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
                                   "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"]):
        dtype.value.add(name=name, number=number)

    def message(name: str, fields: list[tuple]) -> descriptor_pb2.DescriptorProto:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return m

    group = message("ModelInstanceGroup", [
        ("name", 1, F.TYPE_STRING, opt, None), ("kind", 4, F.TYPE_ENUM, opt, ".inference.ModelInstanceGroup.Kind"),
        ("count", 2, F.TYPE_INT32, opt, None), ("gpus", 3, F.TYPE_INT32, rep, None)])
    kind = group.enum_type.add(name="Kind")
    for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=number)
    message("ModelInput", [
        ("name", 1, F.TYPE_STRING, opt, None), ("data_type", 2, F.TYPE_ENUM, opt, ".inference.DataType"),
        ("dims", 4, F.TYPE_INT64, rep, None)])
    message("ModelOutput", [
        ("name", 1, F.TYPE_STRING, opt, None), ("data_type", 2, F.TYPE_ENUM, opt, ".inference.DataType"),
        ("dims", 3, F.TYPE_INT64, rep, None)])
    accelerators = message("ModelOptimizationPolicy", [
        ("execution_accelerators", 4, F.TYPE_MESSAGE, opt,
         ".inference.ModelOptimizationPolicy.ExecutionAccelerators")])
    execution = accelerators.nested_type.add(name="ExecutionAccelerators")
    accelerator = execution.nested_type.add(name="Accelerator")
    accelerator.field.add(name="name", number=1, type=F.TYPE_STRING, label=opt)
    accelerator.field.add(name="parameters", number=2, type=F.TYPE_MESSAGE, label=rep,
                          type_name=".inference.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator.ParametersEntry")
    entry = accelerator.nested_type.add(name="ParametersEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_STRING, label=opt)
    for name, number in (("gpu_execution_accelerator", 1), ("cpu_execution_accelerator", 2)):
        execution.field.add(name=name, number=number, type=F.TYPE_MESSAGE, label=rep,
                            type_name=".inference.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator")
    message("ModelDynamicBatching", [
        ("preferred_batch_size", 1, F.TYPE_INT32, rep, None),
        ("max_queue_delay_microseconds", 2, F.TYPE_UINT64, opt, None)])
    message("ModelConfig", [
        ("name", 1, F.TYPE_STRING, opt, None), ("platform", 2, F.TYPE_STRING, opt, None),
        ("backend", 17, F.TYPE_STRING, opt, None), ("max_batch_size", 4, F.TYPE_INT32, opt, None),
        ("input", 5, F.TYPE_MESSAGE, rep, ".inference.ModelInput"),
        ("output", 6, F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
        ("instance_group", 7, F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
        ("dynamic_batching", 11, F.TYPE_MESSAGE, opt, ".inference.ModelDynamicBatching"),
        ("optimization", 12, F.TYPE_MESSAGE, opt, ".inference.ModelOptimizationPolicy")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def parse_config(text: str):
    """The config as a ModelConfig message; `google.protobuf.text_format.ParseError` if invalid."""
    from google.protobuf import text_format

    return text_format.Parse(text, _model_config_class()())


def check_config(text: str, artifact: Artifact | None = None) -> list[str]:
    """Problems with a config.pbtxt: it must parse, and (given the artifact) name its tensors."""
    from google.protobuf import text_format

    try:
        config = parse_config(text)
    except text_format.ParseError as exc:
        return [f"does not parse: {exc}"]
    problems = []
    if config.platform != "onnxruntime_onnx":
        problems.append(f"platform {config.platform!r}, expected 'onnxruntime_onnx'")
    if config.max_batch_size > 0 and not config.HasField("dynamic_batching"):
        problems.append("batching model without dynamic_batching")
    for accelerator in config.optimization.execution_accelerators.gpu_execution_accelerator:
        if accelerator.name not in ("tensorrt", "cuda"):
            problems.append(f"unknown GPU execution accelerator {accelerator.name!r} for the ONNX Runtime backend")
        mode = accelerator.parameters.get("precision_mode", "FP32")
        if mode not in ("FP32", "FP16", "INT8"):
            problems.append(f"TensorRT precision_mode {mode!r}: FP32, FP16 or INT8")
    if artifact is not None:
        want_in = [v["name"] for v in artifact.io["inputs"]]
        want_out = [v["name"] for v in artifact.io["outputs"]]
        if [i.name for i in config.input] != want_in or [o.name for o in config.output] != want_out:
            problems.append("tensor names differ from the piece's ONNX inputs and outputs")
    return problems
