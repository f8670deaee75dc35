"""Kernel statistics: per fused kernel, its FLOPs and bytes, read from the program TVM would run
(the estimator's input; `profiles.calibration` turns them into latencies).

`KernelStats`: the prepared ONNX model is imported into Relax and put
   through the passes of `relax.get_pipeline("zero")` (legalize, fuse, FuseTIR) — the same
   fusion `profiles/tvm_adapter.py` compiles (FoldConstant is skipped for speed; see
   `fuse_for_stats`). Every `call_tir` in `main` is one kernel launch: its
   FLOPs come from `tvm.s_tir.analysis.estimate_tir_flops` on the fused PrimFunc (a multiply-add
   counts 2), its bytes from the shapes and dtypes of its arguments and results (split into
   constant bytes — weights, which do not grow with the batch — and activation bytes, which do).
   This runs in a child process (TVM compile work can crash). A model TVM cannot import gets the
   same statistics from the ONNX graph itself (`onnx_kernel_stats`, one kernel per node).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

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
            answer = run_in_child(__name__, "_child_kernel_stats", {"models": items},
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
