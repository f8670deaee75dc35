"""Make an exported ONNX model ready for TVM and ONNX Runtime: static shapes, folded shape maths.

Real exports (torch.onnx, tf2onnx) leave the batch dimension symbolic and compute every Reshape
target through a Shape -> Gather -> Concat subgraph. TVM's Relax importer cannot follow that, so
`prepare_onnx` fixes the input dims the caller gives, infers shapes, folds those subgraphs into
constants (onnxslim) and checks the result. Both runtimes measure the same prepared model.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from profiles.errors import UserError

logger = logging.getLogger(__name__)


class OnnxPrepError(UserError):
    """Base class: an ONNX model that cannot be prepared for profiling."""


class OnnxLoadError(OnnxPrepError):
    """The file is missing or is not a readable ONNX model; the message names the file."""


class InputShapeError(OnnxPrepError):
    """`input_shapes` does not fit the model's inputs; the message names the input."""


class UnsupportedOpError(OnnxPrepError):
    """The model uses operators a runtime cannot run; names the ops and the model."""

    def __init__(self, model: str, ops: list[str], runtime: str = "ONNX"):
        self.model = model
        self.ops = sorted(set(ops))
        self.runtime = runtime
        super().__init__(f"{model}: operator(s) not supported by {runtime}: {', '.join(self.ops)}")


@dataclass(frozen=True)
class IOBytes:
    """Bytes that cross the boundary of a prepared model per inference (batch as prepared)."""

    input_bytes: int
    output_bytes: int


# --- loading ----------------------------------------------------------------------------------

def model_name(model: onnx.ModelProto, path: Path | None = None) -> str:
    """A name for messages: the file name when there is one, else the graph name."""
    if path is not None:
        return str(path)
    return model.graph.name or "<in-memory ONNX model>"


def load_onnx(path_or_model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """Read a model (or copy one given in memory); a missing or corrupt file is `OnnxLoadError`."""
    if isinstance(path_or_model, onnx.ModelProto):
        return copy.deepcopy(path_or_model)
    path = Path(path_or_model)
    if not path.is_file():
        raise OnnxLoadError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ... on garbage
        raise OnnxLoadError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    if not model.graph.node:
        raise OnnxLoadError(f"{path}: not a readable ONNX model (graph has no nodes)")
    return model


def model_digest(path_or_model: str | Path | onnx.ModelProto) -> str:
    """sha256 of the file's bytes (of the serialized proto for an in-memory model)."""
    if isinstance(path_or_model, onnx.ModelProto):
        return hashlib.sha256(path_or_model.SerializeToString()).hexdigest()
    path = Path(path_or_model)
    if not path.is_file():
        raise OnnxLoadError(f"{path}: ONNX file not found")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- inputs and shapes ------------------------------------------------------------------------

def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs: old exporters also list every initializer as a graph input."""
    initializers = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    if not value.type.tensor_type.HasField("shape"):
        return []
    out: list[int | str | None] = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(d.dim_value)
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def static_shape(value: onnx.ValueInfoProto) -> list[int] | None:
    """The dims when all are known integers, else None."""
    if not value.type.tensor_type.HasField("shape"):
        return None
    dims = _dims(value)
    return dims if all(isinstance(d, int) and d > 0 for d in dims) else None  # type: ignore[return-value]


def input_specs(model: onnx.ModelProto) -> dict[str, tuple[list[int], str]]:
    """name -> (static shape, numpy dtype name) for each graph input of a prepared model."""
    specs = {}
    for value in graph_inputs(model):
        shape = static_shape(value)
        if shape is None:
            raise InputShapeError(f"input {value.name!r} has no fixed shape {_dims(value)}; give its "
                                  f"shape in the spec's inputs")
        specs[value.name] = (shape, _np_dtype(value).name)
    return specs


def _np_dtype(value: onnx.ValueInfoProto) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))


def _fix_input_dims(model: onnx.ModelProto, input_shapes: Mapping[str, list[int]], name: str) -> None:
    inputs = {i.name: i for i in graph_inputs(model)}
    for input_name, shape in input_shapes.items():
        if input_name not in inputs:
            raise InputShapeError(
                f"{name}: {input_name!r} is not an input of the model; its inputs are "
                f"{', '.join(repr(n) for n in inputs) or '(none)'}"
            )
        if not all(isinstance(d, int) and d > 0 for d in shape):
            raise InputShapeError(f"{name}: input {input_name!r}: dims must be positive integers, got {list(shape)}")
        value = inputs[input_name]
        declared = _dims(value)
        if value.type.tensor_type.HasField("shape") and len(declared) != len(shape):
            raise InputShapeError(
                f"{name}: input {input_name!r} has rank {len(declared)} (dims {declared}), "
                f"but the shape given, {list(shape)}, has rank {len(shape)}"
            )
        for axis, (old, new) in enumerate(zip(declared, shape)):
            if isinstance(old, int) and old > 0 and old != new:
                raise InputShapeError(
                    f"{name}: input {input_name!r} dim {axis} is fixed at {old} in the model, "
                    f"but the shape given says {new}"
                )
        tensor_shape = value.type.tensor_type.shape
        tensor_shape.ClearField("dim")
        for d in shape:
            tensor_shape.dim.add().dim_value = int(d)
    for input_name, value in inputs.items():
        if static_shape(value) is None:
            raise InputShapeError(
                f"{name}: input {input_name!r} has dynamic dims {_dims(value)}; give its shape in input_shapes"
            )


def _clear_inferred_shapes(model: onnx.ModelProto) -> None:
    """Drop intermediate shapes and symbolic output dims so inference recomputes them from the inputs."""
    del model.graph.value_info[:]
    for out in model.graph.output:
        if static_shape(out) is None and out.type.tensor_type.HasField("shape"):
            out.type.tensor_type.ClearField("shape")


# --- the pipeline -----------------------------------------------------------------------------

# Domains whose ops some runtime implements though ONNX has no schema for them here.
_RUNTIME_DOMAINS = {"ai.onnx.ml", "com.microsoft"}


def _check_known_ops(model: onnx.ModelProto, name: str) -> None:
    """Ops with no ONNX schema (custom domains, typos) fail here, not deep inside a runtime."""
    opsets = {o.domain: o.version for o in model.opset_import}
    unknown = []
    for node in model.graph.node:
        domain = node.domain or ""
        if domain in ("", "ai.onnx"):
            version = opsets.get("", opsets.get("ai.onnx", 1))
            if not onnx.defs.has(node.op_type, "") or _schema_missing(node.op_type, version):
                unknown.append(node.op_type)
        elif domain not in _RUNTIME_DOMAINS and not onnx.defs.has(node.op_type, domain):
            unknown.append(f"{domain}::{node.op_type}")
    if unknown:
        raise UnsupportedOpError(name, unknown, runtime="the ONNX standard")


def _schema_missing(op_type: str, version: int) -> bool:
    try:
        onnx.defs.get_schema(op_type, version, "")
    except onnx.defs.SchemaError:
        return True
    return False


def _slim(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant-fold and simplify with onnxslim, quietly (it configures its own logger)."""
    import onnxslim

    slim_logger = logging.getLogger("onnxslim")
    level = slim_logger.level
    try:
        slimmed = onnxslim.slim(model)
    finally:
        slim_logger.setLevel(level or logging.WARNING)
    if slimmed is None:  # onnxslim returns None when its own output check fails
        raise OnnxPrepError("onnxslim could not simplify the model")
    return slimmed


def prepare_onnx(
    path_or_model: str | Path | onnx.ModelProto,
    input_shapes: Mapping[str, list[int]],
) -> onnx.ModelProto:
    """Load, fix input dims, infer shapes, fold shape subgraphs and constants, check.

    Raises `OnnxLoadError` (unreadable file), `InputShapeError` (a name that is not an input, a
    rank or a fixed dim that disagrees, or a dynamic input left without a shape) and
    `UnsupportedOpError` (ops outside the ONNX standard).
    """
    path = None if isinstance(path_or_model, onnx.ModelProto) else Path(path_or_model)
    model = load_onnx(path_or_model)
    name = model_name(model, path)
    _check_known_ops(model, name)
    _fix_input_dims(model, input_shapes, name)
    _clear_inferred_shapes(model)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        model = _slim(model)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except OnnxPrepError:
        raise
    except Exception as exc:
        raise OnnxPrepError(f"{name}: shape inference or folding failed: {exc}") from exc
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxPrepError(f"{name}: prepared model does not pass onnx.checker: {exc}") from exc
    dynamic = [o.name for o in model.graph.output if static_shape(o) is None]
    if dynamic:
        logger.warning("%s: output(s) %s still have dynamic shapes after folding", name, dynamic)
    if not model.graph.name:
        model.graph.name = path.stem if path else "model"
    return model


def io_bytes(prepared_model: onnx.ModelProto) -> IOBytes:
    """Bytes of all graph inputs and of all graph outputs, from their static shapes and dtypes."""

    def total(values) -> int:
        n = 0
        for value in values:
            shape = static_shape(value)
            if shape is None:
                raise InputShapeError(
                    f"{value.name!r} has no fixed shape {_dims(value)}: its size depends on the "
                    f"values the model runs with"
                )
            n += int(np.prod(shape, dtype=np.int64)) * _np_dtype(value).itemsize
        return n

    return IOBytes(
        input_bytes=total(graph_inputs(prepared_model)),
        output_bytes=total(prepared_model.graph.output),
    )


def parameter_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the initializers (the weights) of a model."""
    n = 0
    for init in model.graph.initializer:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        n += int(np.prod(init.dims, dtype=np.int64)) * itemsize
    return n


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs for a prepared model (see `random_feeds`)."""
    return random_feeds(input_specs(model), seed)


def random_feeds(specs: Mapping[str, tuple[list[int], str]], seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for `input_specs`: floats uniform in [-1, 1), integers and bools in {0, 1}
    (valid token ids and masks for any vocabulary)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for input_name, (shape, dtype) in specs.items():
        dt = np.dtype(dtype)
        if np.issubdtype(dt, np.floating):
            feeds[input_name] = rng.uniform(-1.0, 1.0, size=shape).astype(dt)
        else:
            feeds[input_name] = rng.integers(0, 2, size=shape).astype(dt)
    return feeds


def fix_input_shapes(path_or_model: str | Path | onnx.ModelProto,
                     input_shapes: Mapping[str, list[int]]) -> onnx.ModelProto:
    """The model with its input dims fixed and nothing else changed: what ONNX Runtime runs when
    `prepare_onnx` cannot fold the model (control flow, recurrent ops) for TVM."""
    path = None if isinstance(path_or_model, onnx.ModelProto) else Path(path_or_model)
    model = load_onnx(path_or_model)
    name = model_name(model, path)
    _fix_input_dims(model, input_shapes, name)
    if not model.graph.name:
        model.graph.name = path.stem if path else "model"
    return model


def model_ops(model: onnx.ModelProto) -> list[str]:
    """The distinct operator types of a model (its subgraphs' too), sorted."""
    ops: set[str] = set()

    def walk(graph) -> None:
        for node in graph.node:
            ops.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    return sorted(ops)


# Operators TVM's Relax ONNX importer has trouble with in a folded static graph: named in the
# one-line reason when preparing a model fails.
CONTROL_FLOW_OPS = ("If", "Loop", "Scan", "LSTM", "GRU", "RNN", "SequenceConstruct", "SequenceAt",
                    "SplitToSequence", "ConcatFromSequence", "NonZero", "Unique")


def prepare_failure_reason(path_or_model: str | Path | onnx.ModelProto, exc: Exception) -> str:
    """One line for a person: why a model could not be prepared, naming the operators that
    usually cause it (control flow, recurrent ops) when the model has them."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    first = first.split(": shape inference or folding failed: ")[-1]
    if len(first) > 160:
        first = first[:157] + "..."
    try:
        ops = [op for op in model_ops(load_onnx(path_or_model)) if op in CONTROL_FLOW_OPS]
    except OnnxPrepError:
        ops = []
    named = f" (the model uses {', '.join(ops)})" if ops else ""
    return f"shapes could not be fixed and folded for TVM{named}: {first}"


def sample_feeds(specs: Mapping[str, tuple[list[int], str]], seed: int = 0,
                 sample_inputs: str | Path | None = None) -> dict[str, np.ndarray]:
    """`random_feeds`, with the arrays of a sample-input `.npz` (by input name) in place of the
    random ones: for inputs whose values matter (sizes, sample rates, token ids)."""
    feeds = random_feeds(specs, seed)
    if sample_inputs:
        with np.load(str(sample_inputs), allow_pickle=False) as data:
            for name in data.files:
                if name in feeds:
                    feeds[name] = _fit(np.asarray(data[name]), feeds[name], name)
    return feeds


def _fit(values: np.ndarray, like: np.ndarray, name: str) -> np.ndarray:
    """Given values as the input's dtype and shape; k calls stacked along dim 0 repeat them."""
    values = values.astype(like.dtype)
    if values.shape == like.shape:
        return values
    if (values.ndim == like.ndim and values.ndim and values.shape[1:] == like.shape[1:]
            and values.shape[0] and like.shape[0] % values.shape[0] == 0):
        return np.concatenate([values] * (like.shape[0] // values.shape[0]), axis=0)
    raise InputShapeError(f"input {name!r}: values of shape {list(values.shape)} do not fit the "
                          f"shape {list(like.shape)}")


def is_prepared(model: onnx.ModelProto, input_shapes: Mapping[str, list[int]]) -> bool:
    """True when every input and output is static and the inputs match `input_shapes`."""
    for value in graph_inputs(model):
        shape = static_shape(value)
        if shape is None or (value.name in input_shapes and list(input_shapes[value.name]) != shape):
            return False
    if any(name not in {v.name for v in graph_inputs(model)} for name in input_shapes):
        return False
    if any(static_shape(o) is None for o in model.graph.output):
        return False
    return not any(node.op_type == "Shape" for node in model.graph.node)


def ensure_prepared(model: onnx.ModelProto, input_shapes: Mapping[str, list[int]]) -> onnx.ModelProto:
    """The model itself when already prepared for these shapes, else `prepare_onnx(model, ...)`."""
    return model if is_prepared(model, input_shapes) else prepare_onnx(model, input_shapes)


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write a model for a child process; weights over 2 GB go to an external data file."""
    path = Path(path)
    if model.ByteSize() > 2_000_000_000:
        onnx.save_model(model, str(path), save_as_external_data=True,
                        location=path.name + ".data")
    else:
        onnx.save_model(model, str(path))
    return path
