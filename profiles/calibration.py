"""The calibrated estimator's model: per-kernel FLOPs and bytes, a roofline, fitted efficiencies.

What a piece costs is read from the program TVM would run, kernel by kernel:

1. **Kernel statistics** (`KernelStats`): the prepared ONNX model is imported into Relax and put
   through the passes of `relax.get_pipeline("zero")` (legalize, fuse, FuseTIR) — the same
   fusion `profiles/tvm_adapter.py` compiles (FoldConstant is skipped for speed; see
   `fuse_for_stats`). Every `call_tir` in `main` is one kernel launch: its
   FLOPs come from `tvm.s_tir.analysis.estimate_tir_flops` on the fused PrimFunc (a multiply-add
   counts 2), its bytes from the shapes and dtypes of its arguments and results (split into
   constant bytes — weights, which do not grow with the batch — and activation bytes, which do).
   This runs in a child process (TVM compile work can crash). A model TVM cannot import gets the
   same statistics from the ONNX graph itself (`onnx_kernel_stats`, one kernel per node).
2. **Roofline**: a kernel takes `max(flops / (e_kind × peak), bytes / (e_bw × bandwidth))` plus a
   fixed cost per launch; a piece takes the sum over its kernels plus the class's `overhead_ms`.
   `kind` is conv, dwconv (depthwise: under 40 FLOPs per output element), matmul, other
   (elementwise, pooling, normalisation) or free (reshapes, which the VM turns into views).
   `peak` and `bandwidth` are the hardware class's `peak_gflops` and `mem_bandwidth_gbs`; for
   untuned TVM on a CPU they are divided by the core count, because default TIR schedules run
   on one thread (no parallel loops).
3. **Calibration** (`fit_runtime`): the efficiencies `e_kind`, `e_bw` and the per-launch cost are
   fitted per (hardware kind, runtime) on measured rows — zoo and exported models measured on
   this machine — by least squares on log latency, lightly pulled towards a prior so that a kind
   the data lacks keeps a sensible value. `leave_one_model_out` refits without each model in
   turn and predicts it: the spread of those relative errors is the honest error of an estimate
   for a model the fit never saw, and its 90th percentile becomes every estimated row's
   `error_band`.

GPU and NPU classes cannot be measured here, so their efficiencies are **assumed**, per class
kind (stated in `ASSUMED`): untuned-TVM CPU latency is never scaled to a GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field

from profiles.hardware import HardwareClass

logger = logging.getLogger(__name__)

KINDS = ("conv", "dwconv", "matmul", "other")
STATS_FORMAT = 1
# Depthwise convolutions do few FLOPs per output element (3x3: 18); dense ones many.
DEPTHWISE_FLOPS_PER_OUTPUT = 40.0
_FREE_TIR = ("reshape", "squeeze", "expand_dims", "flatten")
_FREE_ONNX = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant",
              "Dropout"}


# --- kernel statistics ------------------------------------------------------------------------

@dataclass(frozen=True)
class Kernel:
    """One kernel (a fused PrimFunc, or an ONNX node) and how often `main` launches it."""

    name: str
    kind: str
    flops: float
    const_bytes: float
    act_bytes: float
    calls: int = 1


@dataclass(frozen=True)
class KernelStats:
    """The kernels of one prepared piece at `batch` (the first dim of its inputs)."""

    kernels: tuple[Kernel, ...]
    batch: int
    method: str  # "tir" (TVM's fused kernels) or "onnx" (graph nodes)
    note: str = ""  # why the ONNX fallback was used when the reason may not recur (not cached)

    @property
    def flops(self) -> float:
        return sum(k.flops * k.calls for k in self.kernels)

    @property
    def bytes(self) -> float:
        return sum((k.const_bytes + k.act_bytes) * k.calls for k in self.kernels)

    @property
    def launches(self) -> int:
        return sum(k.calls for k in self.kernels if k.kind != "free")

    def at_batch(self, batch: int) -> KernelStats:
        """The same piece at another batch: FLOPs and activation bytes scale, weights do not."""
        if batch == self.batch:
            return self
        f = batch / self.batch
        return KernelStats(tuple(dataclasses.replace(k, flops=k.flops * f, act_bytes=k.act_bytes * f)
                                 for k in self.kernels), batch, self.method, self.note)

    def by_kind(self) -> dict[str, dict[str, float]]:
        out = {kind: {"flops": 0.0, "bytes": 0.0, "launches": 0} for kind in (*KINDS, "free")}
        for k in self.kernels:
            out[k.kind]["flops"] += k.flops * k.calls
            out[k.kind]["bytes"] += (k.const_bytes + k.act_bytes) * k.calls
            out[k.kind]["launches"] += k.calls
        return out

    def to_dict(self) -> dict:
        return {"batch": self.batch, "method": self.method,
                "kernels": [dataclasses.astuple(k) for k in self.kernels]}

    @classmethod
    def from_dict(cls, data: Mapping) -> KernelStats:
        return cls(tuple(Kernel(*k) for k in data["kernels"]), int(data["batch"]), data["method"])


def _classify(name: str, flops: float, out_elems: float, op_hint: str) -> str:
    if op_hint == "free":
        return "free"
    if op_hint == "conv":
        per_output = flops / max(out_elems, 1.0)
        return "dwconv" if per_output < DEPTHWISE_FLOPS_PER_OUTPUT else "conv"
    if op_hint == "matmul":
        return "matmul"
    return "other"


def _tir_hint(name: str) -> str:
    low = name.lower()
    if "conv" in low:
        return "conv"
    if "matmul" in low or "dense" in low:
        return "matmul"
    if low.startswith(_FREE_TIR) and not any(x in low for x in ("add", "mul", "relu")):
        return "free"
    return "other"


def _type_elems(ty) -> float:
    """Elements of a Relax tensor type (or a tuple of them) with a static shape; TVM 0.27 calls
    struct info `ty` (`relax.TensorType`, `relax.TupleType`)."""
    from tvm import relax

    if isinstance(ty, relax.TupleType):
        return sum(_type_elems(f) for f in ty.fields)
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return 0.0
    n = 1
    for v in getattr(ty.shape, "values", ()):
        n *= int(v)
    return float(n)


def _type_bytes(ty) -> float:
    from tvm import relax

    if isinstance(ty, relax.TupleType):
        return sum(_type_bytes(f) for f in ty.fields)
    if not isinstance(ty, relax.TensorType):
        return 0.0
    return _type_elems(ty) * _itemsize(str(ty.dtype))


def _itemsize(dtype: str) -> int:
    if dtype == "bool":
        return 1
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        digits = "".join(c for c in dtype if c.isdigit())
        return max(1, int(digits or 32) // 8)


def tir_kernel_stats(mod, batch: int) -> KernelStats:
    """Kernel statistics of a legalized, fused Relax module (see `fuse_for_stats`).

    Every `call_tir` binding in a Relax function is one kernel launch. A kernel whose inputs are
    all constants is left out (FoldConstant evaluates it at compile time) and its result counts
    as a constant downstream, so weights stay constant bytes even when they were transposed."""
    import tvm
    from tvm import relax
    from tvm.s_tir.analysis import estimate_tir_flops

    flops_of: dict[str, float] = {}
    found: dict[tuple, list] = {}
    const_vars: set = set()

    def flops(gv) -> float:
        name = gv.name_hint
        if name not in flops_of:
            try:
                flops_of[name] = float(estimate_tir_flops(tvm.IRModule({"main": mod[gv]})))
            except Exception:  # noqa: BLE001 - an unusual PrimFunc: count no FLOPs, keep its bytes
                flops_of[name] = 0.0
        return flops_of[name]

    def is_const(expr) -> bool:
        return "Const" in type(expr).__name__ or any(expr.same_as(v) for v in const_vars)

    for func in mod.functions.values():
        if not isinstance(func, relax.Function) or not hasattr(func.body, "blocks"):
            continue
        for block in func.body.blocks:
            for binding in block.bindings:
                call = binding.value
                if not (isinstance(call, tvm.ir.expr.Call) and isinstance(call.op, tvm.ir.Op)
                        and call.op.name in ("relax.call_tir", "relax.call_tir_inplace")):
                    continue
                gv, args = call.args[0], list(call.args[1].fields)
                if all(is_const(a) for a in args):
                    const_vars.add(binding.var)
                    continue
                const_b = sum(_type_bytes(a.ty) for a in args if is_const(a))
                act_b = sum(_type_bytes(a.ty) for a in args if not is_const(a))
                out_b = sum(_type_bytes(t) for t in call.ty_args)
                out_elems = sum(_type_elems(t) for t in call.ty_args)
                key = (gv.name_hint, const_b, act_b, out_b)
                if key in found:
                    found[key][-1] += 1
                else:
                    found[key] = [gv, const_b, act_b + out_b, out_elems, out_b, 1]
    kernels = []
    for (name, *_), (gv, const_b, act_b, out_elems, out_b, calls) in found.items():
        f = flops(gv)
        kind = _classify(name, f, out_elems, _tir_hint(name))
        if ("take" in name or "gather" in name) and kind == "other":
            const_b = min(const_b, out_b)  # a lookup reads the rows it gathers, not the table
        kernels.append(Kernel(name, kind, f, const_b, act_b, calls))
    return KernelStats(tuple(sorted(kernels, key=lambda k: k.name)), batch, "tir")


def fuse_for_stats(mod):
    """The "zero" pipeline's passes (legalize, annotate, fuse, FuseTIR) without FoldConstant,
    which compiles every foldable op with LLVM (10 s for MobileNetV2) and changes no kernel that
    runs: `tir_kernel_stats` drops the all-constant kernels it would have folded."""
    import tvm
    from tvm import relax

    seq = tvm.transform.Sequential([relax.transform.LegalizeOps(),
                                    relax.transform.AnnotateTIROpPattern(),
                                    relax.transform.FuseOps(), relax.transform.FuseTIR()])
    with tvm.target.Target({"kind": "llvm"}):
        return seq(mod)


def onnx_kernel_stats(prepared: onnx.ModelProto, batch: int | None = None) -> KernelStats:
    """Kernel statistics from the ONNX graph itself, one kernel per node (no TVM needed).

    FLOPs: Conv 2·out·(Cin/groups)·k², MatMul/Gemm 2·out·K, GRU/LSTM/RNN their gate GEMMs,
    every other op one FLOP per output element; reshapes are free. Bytes: inputs and outputs."""
    shapes = tensor_shapes(prepared)
    consts = {init.name for init in prepared.graph.initializer}
    consts |= {o for n in prepared.graph.node if n.op_type == "Constant" for o in n.output}
    if batch is None:
        from profiles.onnx_prep import graph_inputs

        first = [shapes[i.name][0] for i in graph_inputs(prepared) if shapes.get(i.name)]
        batch = int(first[0][0]) if first and first[0] else 1
    kernels = []
    for index, node in enumerate(prepared.graph.node):
        if node.op_type == "Constant":
            continue
        f, hint = node_flops(node, shapes)
        out_elems = sum(_prod(shapes[o][0]) for o in node.output if o in shapes)
        out_b = sum(_nbytes(shapes[o]) for o in node.output if o in shapes)
        const_b = sum(_nbytes(shapes[i]) for i in node.input if i in consts and i in shapes)
        act_b = out_b + sum(_nbytes(shapes[i]) for i in node.input
                            if i and i not in consts and i in shapes)
        if node.op_type == "Gather":
            const_b = min(const_b, out_b)
        kind = _classify(node.name, f, out_elems, hint)
        kernels.append(Kernel(node.name or f"{node.op_type}_{index}", kind, f, const_b, act_b, 1))
    return KernelStats(tuple(kernels), batch, "onnx")


def tensor_shapes(model: onnx.ModelProto) -> dict[str, tuple[list[int], int]]:
    """name -> (static dims, itemsize) for every tensor of a shape-inferred model that has them."""
    out: dict[str, tuple[list[int], int]] = {}
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    for value in values:
        t = value.type.tensor_type
        if not t.HasField("shape") or not all(d.HasField("dim_value") for d in t.shape.dim):
            continue
        try:
            size = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).itemsize
        except (KeyError, TypeError):
            size = 4
        out[value.name] = ([d.dim_value for d in t.shape.dim], size)
    for init in model.graph.initializer:
        size = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        out[init.name] = (list(init.dims), size)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    size = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(attr.t.data_type)).itemsize
                    out[node.output[0]] = (list(attr.t.dims), size)
    return out


def _prod(dims) -> float:
    return float(np.prod(dims, dtype=np.float64)) if len(dims) else 1.0


def _nbytes(entry) -> float:
    dims, size = entry
    return _prod(dims) * size


def node_flops(node: onnx.NodeProto, shapes: Mapping[str, tuple[list[int], int]]) -> tuple[float, str]:
    """(FLOPs, kind hint) of one ONNX node; shapes from `tensor_shapes`."""
    def dims(name):
        return shapes[name][0] if name in shapes else None

    op = node.op_type
    out = dims(node.output[0]) if node.output else None
    out_elems = _prod(out) if out is not None else 0.0
    if op in _FREE_ONNX:
        return 0.0, "free"
    if op in ("Conv", "ConvTranspose") and len(node.input) > 1 and dims(node.input[1]):
        w = dims(node.input[1])
        if op == "Conv":
            return 2.0 * out_elems * _prod(w[1:]), "conv"
        x = dims(node.input[0]) or []
        return 2.0 * _prod(x) * _prod(w[1:]), "conv"
    if op == "MatMul" and dims(node.input[0]):
        return 2.0 * out_elems * dims(node.input[0])[-1], "matmul"
    if op == "Gemm" and dims(node.input[0]):
        a = dims(node.input[0])
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        k = a[0] if trans_a else a[-1]
        return 2.0 * out_elems * k, "matmul"
    if op in ("GRU", "LSTM", "RNN") and dims(node.input[0]) and dims(node.input[1]):
        x, w = dims(node.input[0]), dims(node.input[1])
        r = dims(node.input[2]) or [w[0], w[1], w[1] // {"GRU": 3, "LSTM": 4, "RNN": 1}[op]]
        layout = next((at.i for at in node.attribute if at.name == "layout"), 0)
        seq, batch = (x[1], x[0]) if layout else (x[0], x[1])
        return 2.0 * seq * batch * w[0] * w[1] * (w[2] + r[2]), "matmul"
    return out_elems, "other"


# --- kernel statistics in a child process -----------------------------------------------------

def _child_kernel_stats(payload: dict, report) -> dict:
    """In the child: import each model into Relax, run the "zero" pipeline, count its kernels."""
    import warnings

    results = []
    for item in payload["models"]:
        report(f"stats {item['name']}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from tvm.relax.frontend.onnx import from_onnx

                model = onnx.load(item["path"])
                inputs = item["inputs"]
                mod = from_onnx(model, shape_dict={k: list(v[0]) for k, v in inputs.items()},
                                dtype_dict={k: v[1] for k, v in inputs.items()})
                stats = tir_kernel_stats(fuse_for_stats(mod), item["batch"])
            results.append({"stats": stats.to_dict()})
        except Exception as exc:  # noqa: BLE001 - one model's failure is data, not the batch's
            results.append({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"})
    return {"results": results}


def kernel_stats_many(models: Sequence[tuple[str, onnx.ModelProto, int]],
                      timeout_s: float = 600.0) -> list[KernelStats]:
    """TIR kernel statistics of several prepared models in one child process (one TVM import).

    `models` are (name, prepared model, batch). A model TVM cannot import or compile — or all of
    them, when the child crashes — gets `onnx_kernel_stats` instead (method "onnx")."""
    from profiles.child import ChildFailure, run_in_child
    from profiles.onnx_prep import input_specs, save_model

    if not models:
        return []
    with tempfile.TemporaryDirectory(prefix="kernel-stats-") as tmp:
        items = []
        for i, (name, model, batch) in enumerate(models):
            path = save_model(model, Path(tmp) / f"m{i}.onnx")
            items.append({"name": name, "path": str(path), "inputs": input_specs(model),
                          "batch": int(batch)})
        try:
            answer = run_in_child("profiles.calibration", "_child_kernel_stats", {"models": items},
                                  timeout_s=timeout_s, log_path=Path(tmp) / "child.log")
            results = answer["results"]
        except ChildFailure as exc:
            logger.warning("kernel statistics: TVM child failed (%s); counting ONNX nodes instead",
                           exc)
            results = [{"error": str(exc), "transient": True}] * len(models)
    out = []
    for (name, model, batch), result in zip(models, results):
        if "stats" in result:
            out.append(KernelStats.from_dict(result["stats"]))
        else:
            logger.info("%s: TIR statistics unavailable (%s); using the ONNX graph", name,
                        result["error"])
            stats = onnx_kernel_stats(model, batch)
            if result.get("transient"):
                stats = dataclasses.replace(stats, note="the TVM child crashed or timed out")
            out.append(stats)
    return out


def stats_key(model_digest: str, input_shapes: Mapping[str, list[int]]) -> str:
    """Cache key of a piece's kernel statistics (TVM version included: fusion may change)."""
    from profiles.tvm_adapter import tvm_version

    fields = {"kernel_stats": model_digest, "format": STATS_FORMAT, "tvm": tvm_version(),
              "input_shapes": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())}}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


# --- the roofline -----------------------------------------------------------------------------

class RuntimeParams(BaseModel):
    """Efficiencies of one runtime on one kind of hardware, and how far to trust them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    efficiency: dict[str, float] = Field(description="fraction of peak FLOP/s per kernel kind")
    bandwidth_efficiency: float = Field(
        gt=0, description="effective bandwidth as a fraction of the DRAM figure; above 1 when "
        "activations stay in cache (a 2-core slice of a server CPU has a large L3)")
    launch_ms: float = Field(ge=0, description="fixed cost per kernel launch, ms")
    error_band: float = Field(gt=0, description="90th percentile of |relative error| (LOO)")
    median_error: float | None = Field(default=None, description="median |LOO relative error|")
    source: str = Field(description="fitted on <hardware> (n models, n rows) | assumed")
    single_thread: bool = Field(default=False, description="runs on one core (untuned TVM)")

    def as_vector(self) -> np.ndarray:
        return np.array([*(self.efficiency[k] for k in KINDS), self.bandwidth_efficiency,
                         max(self.launch_ms, 1e-6)])


def usable_peak(hardware: HardwareClass, single_thread: bool) -> tuple[float, float]:
    """(GFLOP/s, GB/s) a runtime can draw on: the class's peaks, one core's share if single-threaded."""
    if single_thread and hardware.kind == "cpu":
        return hardware.peak_gflops / hardware.cores, hardware.mem_bandwidth_gbs / hardware.cores
    return hardware.peak_gflops, hardware.mem_bandwidth_gbs


def _features(stats: KernelStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per launched kernel: kind index, FLOPs, bytes, calls (free kernels dropped)."""
    kept = [k for k in stats.kernels if k.kind != "free"]
    kind = np.array([KINDS.index(k.kind) for k in kept], dtype=np.int64)
    return (kind, np.array([k.flops for k in kept]), np.array([k.const_bytes + k.act_bytes for k in kept]),
            np.array([k.calls for k in kept], dtype=np.float64))


def roofline_ms(stats: KernelStats, hardware: HardwareClass, vector: np.ndarray,
                single_thread: bool) -> float:
    """Latency of one inference: Σ calls · (max(compute, memory) + launch) + class overhead."""
    gflops, gbs = usable_peak(hardware, single_thread)
    kind, flops, nbytes, calls = _features(stats)
    eff = vector[:len(KINDS)][kind]
    compute_ms = flops / (eff * gflops * 1e6)
    memory_ms = nbytes / (vector[len(KINDS)] * gbs * 1e6)
    return float(np.sum(calls * (np.maximum(compute_ms, memory_ms) + vector[-1]))
                 + hardware.overhead_ms)


def predict_ms(stats: KernelStats, batch: int, hardware: HardwareClass,
               params: RuntimeParams) -> float:
    return roofline_ms(stats.at_batch(batch), hardware, params.as_vector(), params.single_thread)


# --- fitting ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One measured row with the statistics of its piece: what the fit learns from."""

    model: str
    runtime: str
    batch: int
    latency_ms: float
    stats: KernelStats


# Priors (and starting points) per runtime on a CPU; the fit moves them where data speaks.
PRIORS: dict[str, RuntimeParams] = {
    "tvm": RuntimeParams(efficiency={"conv": 0.1, "dwconv": 0.05, "matmul": 0.1, "other": 0.1},
                         bandwidth_efficiency=0.5, launch_ms=0.005, error_band=1.0,
                         source="prior", single_thread=True),
    "tvm-tuned": RuntimeParams(efficiency={"conv": 0.5, "dwconv": 0.2, "matmul": 0.5, "other": 0.2},
                               bandwidth_efficiency=0.5, launch_ms=0.005, error_band=1.0,
                               source="prior"),
    "onnxruntime": RuntimeParams(efficiency={"conv": 0.5, "dwconv": 0.2, "matmul": 0.5,
                                             "other": 0.2},
                                 bandwidth_efficiency=0.5, launch_ms=0.003, error_band=1.0,
                                 source="prior"),
}
PRIOR_WEIGHT = 0.1  # per log-parameter, against a residual of one log-latency per row
MAX_BANDWIDTH_EFFICIENCY = 8.0


def fit_runtime(samples: Sequence[Sample], hardware: HardwareClass, runtime: str,
                prior: RuntimeParams | None = None) -> RuntimeParams:
    """Efficiencies of `runtime` on `hardware` that best explain `samples` (all of that runtime).

    Least squares (soft-L1, robust to a few disturbed measurements) on log(predicted / measured),
    each log-parameter pulled towards the prior with weight `PRIOR_WEIGHT`; compute efficiencies
    are kept in [0.001, 1], the bandwidth one in [0.001, 8]. The returned error figures are
    in-sample; `calibrate` replaces them with leave-one-model-out ones."""
    from scipy.optimize import least_squares

    prior = prior or PRIORS.get(runtime, PRIORS["onnxruntime"])
    rows = [s for s in samples if s.runtime == runtime]
    if not rows:
        raise ValueError(f"no measured {runtime} rows to fit")
    x0 = np.log(prior.as_vector())
    scaled = [(s.stats.at_batch(s.batch), math.log(s.latency_ms)) for s in rows]
    lower = np.log([1e-3] * (len(KINDS) + 1) + [1e-6])
    upper = np.log([1.0] * len(KINDS) + [MAX_BANDWIDTH_EFFICIENCY, 10.0])

    def residuals(theta):
        v = np.exp(theta)
        fit = [math.log(roofline_ms(st, hardware, v, prior.single_thread)) - y for st, y in scaled]
        return np.concatenate([fit, PRIOR_WEIGHT * (theta - x0)])

    # soft-L1: a row measured while a neighbour hogged the shared cores pulls less than others
    result = least_squares(residuals, np.clip(x0, lower + 1e-9, upper - 1e-9),
                           bounds=(lower, upper), method="trf", loss="soft_l1", f_scale=0.3)
    v = np.exp(result.x)
    errors = [abs(math.exp(r) - 1.0) for r in result.fun[:len(scaled)]]
    n_models = len({s.model for s in rows})
    return RuntimeParams(
        efficiency={k: float(v[i]) for i, k in enumerate(KINDS)},
        bandwidth_efficiency=float(v[len(KINDS)]), launch_ms=float(v[-1]),
        error_band=float(max(np.percentile(errors, 90), 0.05)),
        median_error=float(np.median(errors)),
        source=f"fitted on {hardware.name} ({n_models} models, {len(rows)} rows, in-sample)",
        single_thread=prior.single_thread,
    )


@dataclass(frozen=True)
class LooResult:
    """Leave-one-model-out: each row predicted by a fit that never saw its model."""

    runtime: str
    rows: list[dict]  # model, batch, measured_ms, predicted_ms, rel_error

    def per_model(self) -> dict[str, float]:
        """Median |relative error| per left-out model."""
        by: dict[str, list[float]] = {}
        for r in self.rows:
            by.setdefault(r["model"], []).append(abs(r["rel_error"]))
        return {m: float(np.median(v)) for m, v in sorted(by.items())}

    @property
    def median_error(self) -> float:
        return float(np.median([abs(r["rel_error"]) for r in self.rows]))

    @property
    def p90_error(self) -> float:
        return float(np.percentile([abs(r["rel_error"]) for r in self.rows], 90))


def leave_one_model_out(samples: Sequence[Sample], hardware: HardwareClass, runtime: str,
                        groups: Mapping[str, str] | None = None) -> LooResult:
    """Refit without each model and predict it. `groups` maps a model to its family: a model's
    whole family is left out with it (a torch export of ResNet-18 must not be predicted by a fit
    that saw the zoo's ResNet-18)."""
    groups = groups or {}
    rows = [s for s in samples if s.runtime == runtime]
    models = sorted({s.model for s in rows})
    if len({groups.get(m, m) for m in models}) < 2:
        raise ValueError(f"{runtime}: leave-one-model-out needs at least 2 models, got {models}")
    out = []
    for model in models:
        family = groups.get(model, model)
        params = fit_runtime([s for s in rows if groups.get(s.model, s.model) != family],
                             hardware, runtime)
        for s in rows:
            if s.model == model:
                predicted = predict_ms(s.stats, s.batch, hardware, params)
                out.append({"model": model, "batch": s.batch, "measured_ms": s.latency_ms,
                            "predicted_ms": predicted,
                            "rel_error": predicted / s.latency_ms - 1.0})
    return LooResult(runtime, out)


def calibrate(samples: Sequence[Sample], hardware: HardwareClass,
              groups: Mapping[str, str] | None = None) -> dict[str, RuntimeParams]:
    """Fit every runtime present in `samples` on all of them; error figures from LOO."""
    fitted = {}
    for runtime in sorted({s.runtime for s in samples}):
        params = fit_runtime(samples, hardware, runtime)
        n_models = len({s.model for s in samples if s.runtime == runtime})
        n_rows = sum(1 for s in samples if s.runtime == runtime)
        if n_models >= 3:
            loo = leave_one_model_out(samples, hardware, runtime, groups)
            params = params.model_copy(update={
                "error_band": max(loo.p90_error, 0.05), "median_error": loo.median_error,
                "source": f"fitted on {hardware.name} ({n_models} models, {n_rows} rows); "
                          "error band = p90 of |leave-one-model-out error|"})
        fitted[runtime] = params
    return fitted


# --- the calibration in use -------------------------------------------------------------------

# Assumed, not fitted (nothing here can measure them). GPU `tvm` means TVM's CUDA build with
# `tvm.s_tir.dlight` default GPU schedules (DESIGN.md): its matmul rule reaches a modest share of
# the fp32 (non-tensor-core) peak, convolutions (no dlight conv rule; fallback schedule) much
# less; memory-bound kernels about half the DRAM bandwidth; ~5 us per kernel launch. NPU
# `onnxruntime` (e.g. Inferentia through its ONNX path) reaches a fair share of its peak on
# GEMM-like work. The error band (±100 %) says these are rough.
ASSUMED: dict[tuple[str, str], RuntimeParams] = {
    ("gpu", "tvm"): RuntimeParams(
        efficiency={"conv": 0.05, "dwconv": 0.02, "matmul": 0.2, "other": 0.1},
        bandwidth_efficiency=0.5, launch_ms=0.005, error_band=1.0,
        source="assumed: dlight default GPU schedules (not measured)"),
    ("npu", "onnxruntime"): RuntimeParams(
        efficiency={"conv": 0.3, "dwconv": 0.05, "matmul": 0.4, "other": 0.05},
        bandwidth_efficiency=0.5, launch_ms=0.01, error_band=1.0,
        source="assumed: NPU through ONNX (not measured)"),
}

# Fitted on x86-zen4-2c (this project's 2-core AMD EPYC Zen 4 machine) by
# `python bench/profiles_bench.py` on 2026-11-25: 4 zoo + 7 exported models, ONNX Runtime at
# batches 1, 2, 4 and untuned TVM at 1, 2 (torch-gru has no TVM rows). Leave-one-family-out
# |error|: ONNX Runtime median 13 %, p90 31 %; TVM median 23 %, p90 78 %.
# A stored calibration (`save_calibration`, `--save-calibration`) replaces these.
FITTED_CPU: dict[str, RuntimeParams] = {
    "onnxruntime": RuntimeParams(
        efficiency={"conv": 0.897, "dwconv": 0.350, "matmul": 0.686, "other": 0.319},
        bandwidth_efficiency=6.81, launch_ms=0.00491, error_band=0.314, median_error=0.130,
        source="fitted on x86-zen4-2c (11 models, 33 rows); error band = p90 of "
               "|leave-one-model-out error|"),
    "tvm": RuntimeParams(
        efficiency={"conv": 0.0195, "dwconv": 0.274, "matmul": 0.0115, "other": 0.100},
        bandwidth_efficiency=1.29, launch_ms=0.00426, error_band=0.777, median_error=0.233,
        source="fitted on x86-zen4-2c (10 models, 20 rows); error band = p90 of "
               "|leave-one-model-out error|", single_thread=True),
}

CALIBRATION_NAME = "cpu"


class Calibration(BaseModel):
    """Efficiencies per runtime for CPU classes (fitted) and per (kind, runtime) elsewhere."""

    model_config = ConfigDict(frozen=True)

    cpu: dict[str, RuntimeParams]
    fitted_on: str = ""
    fitted_arch: str = "x86_64"

    def params(self, hardware: HardwareClass, runtime: str) -> RuntimeParams | None:
        if hardware.kind == "cpu":
            fitted = self.cpu.get(runtime)
            if fitted is None or hardware.arch == self.fitted_arch:
                return fitted
            return _other_arch(fitted, hardware.arch)
        return ASSUMED.get((hardware.kind, runtime))


# A CPU fit does not carry over to another instruction set: ONNX Runtime's x86 kernels reach a
# far larger share of peak (AVX-512 GEMM) than its NEON kernels on small Arm cores. Until an
# Arm device is measured (`placement profile --tracker`), compute efficiencies are capped at an
# assumed Arm level and the band is widened to ±100 %.
OTHER_ARCH_EFFICIENCY_CAP = 0.3


def _other_arch(fitted: RuntimeParams, arch: str) -> RuntimeParams:
    return fitted.model_copy(update={
        "efficiency": {k: min(v, OTHER_ARCH_EFFICIENCY_CAP) for k, v in fitted.efficiency.items()},
        "error_band": max(fitted.error_band, 1.0),
        "source": f"{fitted.source}; transferred to {arch} with compute efficiency capped at "
                  f"{OTHER_ARCH_EFFICIENCY_CAP:.0%} (assumed, not measured)",
    })


def default_calibration() -> Calibration:
    return Calibration(cpu=dict(FITTED_CPU), fitted_on="x86-zen4-2c (built in)")


def current_calibration(store=None) -> Calibration:
    """The calibration saved in the profile store, else the built-in one."""
    try:
        from profiles.store import ProfileStore

        body = (store or ProfileStore()).get_calibration(CALIBRATION_NAME)
    except Exception as exc:  # noqa: BLE001 - an unreadable store must not stop estimating
        logger.warning("calibration: cannot read the profile store (%s); using built-in", exc)
        body = None
    if body:
        try:
            return Calibration.model_validate(body)
        except ValueError as exc:
            logger.warning("calibration: ignoring the stored one (%s)", exc)
    return default_calibration()


def save_calibration(calibration: Calibration, store=None) -> None:
    from profiles.store import ProfileStore

    (store or ProfileStore()).put_calibration(CALIBRATION_NAME, calibration.model_dump())
