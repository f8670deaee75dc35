"""The calibrated estimator's roofline: what one inference of a piece costs on a hardware class.

A piece is its fused kernels (`profiles.kernel_stats`: FLOPs, weight bytes and activation bytes
per kernel, how often `main` launches it). One inference on a CPU class takes

    Σ_kernels calls · (max(compute, memory) + (launch + dispatch_k) · f) + call · f + class overhead

- compute = FLOPs / (e_kind · core peak · speedup(n)), `n` the cores the runtime runs on (1 for
  untuned TVM, whose default schedules have no parallel loops) and `speedup(n)` Amdahl's batch-1
  scaling (`profiles.estimate_hardware`); `e_kind` per kernel kind (conv, dwconv, matmul, other).
- memory = bytes served from cache / (e_bw · bandwidth) + bytes from DRAM / (min(e_bw, 1) ·
  bandwidth). A kernel's activations come from cache when they fit in the cache of the cores
  used (`cache_mb`), the weights when all of the piece's weights fit (they stay there between
  calls); the rest streams from DRAM, at no more than the class's bandwidth figure. `e_bw` above 1
  is what a large cache buys (this machine's fit); it is not credited where the data does not fit.
- launch and call are the runtime's fixed costs per kernel launch and per inference (binding,
  allocation, bookkeeping: host code on one core), plus `dispatch_k` = `dispatch` for a kernel big enough to be split over
  threads (over `DISPATCH_FLOPS`, when more than one core runs it: waking and joining the thread
  pool), all fitted on this machine and scaled by `f` = this machine's core speed / the class's
  (`core_gflops`); a 20 µs model stays a 20 µs model on a class with cores like these, and
  becomes slower on slower cores.

GPU and NPU classes keep the plain roofline over their peaks (`usable_peak`), every byte at
`e_bw` · bandwidth, fixed costs unscaled — except an accelerator with on-chip parameter memory
(`profiles.estimate_hardware.ON_CHIP`: the Coral Edge TPU), which `on_chip_ms` models from its
published facts: int8 ops at a share of the int8 peak, the int8 parameters that do not fit on
chip streamed over the host link on every inference, the input and output over the link, and a
fixed cost per call; activations stay on chip.

`RuntimeParams.error_band` is multiplicative: an estimate `p` with band `b` says the latency lies
between `p ÷ (1 + b)` and `p × (1 + b)` (b = 1: "within a factor 2 either way"). The band of a
piece comes from the leave-one-model-out residuals of the fitted models nearest to it in size
(`band_for`): a 20 µs model gets the band of small models, not of ResNet-50.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from profiles.estimate_hardware import (
    FP32_BYTES,
    SERIAL_FRACTION,
    OnChipFacts,
    cache_mb,
    core_gflops,
    on_chip_facts,
    speedup,
)
from profiles.hardware_class import HardwareClass
from profiles.kernel_stats import KINDS, KernelStats

DRAM_EFFICIENCY_CAP = 1.0
# A kernel under this many FLOPs runs on the calling thread (ONNX Runtime's MLAS splits a GEMM
# over threads only when each gets enough work); above it, a multi-core run pays the thread
# pool's dispatch and join. Assumed (order of magnitude of MLAS's per-thread work threshold).
DISPATCH_FLOPS = 1e5  # bytes that do not fit in cache move at most at the class's bandwidth figure
MIN_BAND = 0.05
SIZE_WINDOW_DECADES = 1.0  # "models of that size": FLOPs within a factor 10 either way
MIN_NEIGHBOURS = 6


class RuntimeParams(BaseModel):
    """Efficiencies and fixed costs of one runtime on one kind of hardware, and their error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    efficiency: dict[str, float] = Field(description="fraction of usable peak FLOP/s per kernel kind")
    bandwidth_efficiency: float = Field(
        gt=0, description="effective bandwidth of bytes that stay in cache, as a multiple of the "
        "class's DRAM figure (above 1: a large cache); bytes that spill move at min(this, 1)")
    launch_ms: float = Field(ge=0, description="fixed cost per kernel launch, ms (at core_gflops)")
    call_ms: float = Field(default=0.0, ge=0,
                           description="fixed cost per inference, ms (at core_gflops)")
    dispatch_ms: float = Field(default=0.0, ge=0, description="extra fixed cost per kernel split "
                               "over threads (over DISPATCH_FLOPS, on more than one core), ms")
    core_gflops: float | None = Field(
        default=None, gt=0, description="one core's fp32 peak on the machine the fixed costs were "
        "fitted on; a class with slower cores pays them proportionally longer (None: unscaled)")
    serial_fraction: float = Field(default=SERIAL_FRACTION, ge=0, le=1,
                                   description="Amdahl serial fraction of a batch-1 kernel")
    error_band: float = Field(gt=0, description="multiplicative band b: the latency lies within "
                              "estimate ÷ (1 + b) … estimate × (1 + b); p90 of |log LOO error|")
    median_error: float | None = Field(default=None, description="median factor − 1 of LOO errors")
    residuals: list[tuple[float, float]] = Field(
        default_factory=list, description="(log10 FLOPs, ln(estimate / measured)) of each "
        "leave-one-model-out row: a piece's band comes from the rows nearest it in size")
    transfer_band: float = Field(
        default=0.0, ge=0, description="extra multiplicative band for using the fit on hardware "
        "it was not fitted on (another instruction set): the bands multiply")
    source: str = Field(description="fitted on <hardware> (n models, n rows) | assumed")
    single_thread: bool = Field(default=False, description="runs on one core (untuned TVM)")

    def as_vector(self) -> np.ndarray:
        return np.array([*(self.efficiency[k] for k in KINDS), self.bandwidth_efficiency,
                         max(self.launch_ms, 1e-6), max(self.call_ms, 1e-6), max(self.dispatch_ms, 1e-6)])

    def band_for(self, flops: float | None = None) -> float:
        """The multiplicative band of a piece of `flops` FLOPs (per inference at its batch)."""
        band = self.error_band
        if self.residuals and flops and flops > 0:
            band = size_band(self.residuals, math.log10(flops))
        if not self.transfer_band:
            return band
        return (1.0 + band) * (1.0 + self.transfer_band) - 1.0


def factor_band(log_errors) -> float:
    """The multiplicative band covering 90 % of these log errors: exp(p90 |ln|) − 1."""
    values = [abs(e) for e in log_errors]
    return max(math.exp(float(np.percentile(values, 90))) - 1.0, MIN_BAND) if values else 1.0


def size_band(residuals, log10_flops: float) -> float:
    """The band of the residual rows nearest in size: all within `SIZE_WINDOW_DECADES`, at
    least the `MIN_NEIGHBOURS` nearest."""
    near = sorted(residuals, key=lambda r: abs(r[0] - log10_flops))
    within = [r for r in near if abs(r[0] - log10_flops) <= SIZE_WINDOW_DECADES]
    chosen = within if len(within) >= MIN_NEIGHBOURS else near[:MIN_NEIGHBOURS]
    return factor_band([e for _, e in chosen])


def cores_used(hardware: HardwareClass, single_thread: bool) -> int:
    return 1 if single_thread and hardware.kind == "cpu" else hardware.cores


def usable_peak(hardware: HardwareClass, single_thread: bool,
                serial_fraction: float = SERIAL_FRACTION) -> tuple[float, float]:
    """(GFLOP/s, GB/s) a runtime draws on: on a CPU, one core's peak × speedup(cores used) and
    those cores' share of the bandwidth; elsewhere the class's peaks."""
    if hardware.kind != "cpu":
        return hardware.peak_gflops, hardware.mem_bandwidth_gbs
    n = cores_used(hardware, single_thread)
    return (core_gflops(hardware) * speedup(n, serial_fraction),
            hardware.mem_bandwidth_gbs * n / hardware.cores)


def fixed_cost_scale(hardware: HardwareClass, reference_core_gflops: float | None) -> float:
    if hardware.kind != "cpu" or not reference_core_gflops:
        return 1.0
    return reference_core_gflops / core_gflops(hardware)


def _features(stats: KernelStats):
    """Per launched kernel: kind index, FLOPs, weight bytes, activation bytes, calls."""
    kept = [k for k in stats.kernels if k.kind != "free"]
    return (np.array([KINDS.index(k.kind) for k in kept], dtype=np.int64),
            np.array([k.flops for k in kept], dtype=np.float64),
            np.array([k.const_bytes for k in kept], dtype=np.float64),
            np.array([k.act_bytes for k in kept], dtype=np.float64),
            np.array([k.calls for k in kept], dtype=np.float64))


def dram_bytes(const: np.ndarray, act: np.ndarray, calls: np.ndarray, cache_bytes: float) -> np.ndarray:
    """Per kernel, the bytes that come from DRAM: the weights unless all of them fit in cache,
    the activations when they do not fit."""
    resident = float(np.sum(const * calls)) <= cache_bytes
    return (0.0 if resident else const) + np.where(act > cache_bytes, act, 0.0)


def on_chip_ms(stats: KernelStats, hardware: HardwareClass, facts: OnChipFacts,
               io_bytes: float | None = None) -> float:
    """One inference on an accelerator that keeps the parameters on chip (`OnChipFacts`):

        call + I/O / link + int8 ops / (efficiency · peak) + max(0, params − SRAM) / link

    `stats` count the fp32 model; the deployed one has `bytes_per_element` per element.
    `io_bytes`: the piece's inputs and outputs in the fp32 model at the stats' batch (None:
    unknown, charged `reference_io_bytes` per sample, a 224x224x3 image and 1000 scores)."""
    return sum(on_chip_parts(stats, hardware, facts, io_bytes).values())


def on_chip_parts(stats: KernelStats, hardware: HardwareClass, facts: OnChipFacts,
                  io_bytes: float | None = None) -> dict[str, float]:
    """The terms of `on_chip_ms`, ms: call, io, compute, streamed (parameters beyond the SRAM)."""
    _, flops, const, _, calls = _features(stats)
    per_element = facts.bytes_per_element / FP32_BYTES
    link = hardware.mem_bandwidth_gbs * 1e6  # bytes per ms
    params = float(np.sum(const * calls)) * per_element
    io = facts.reference_io_bytes * stats.batch if io_bytes is None else io_bytes * per_element
    return {"call": facts.call_ms, "io": io / link,
            "compute": float(np.sum(flops * calls)) / (facts.efficiency * hardware.peak_gflops * 1e6),
            "streamed": max(0.0, params - facts.sram_mb * 1e6) / link}


def estimate_band(params: RuntimeParams, hardware: HardwareClass, flops: float | None = None) -> float:
    """The multiplicative band of an estimate: the accelerator's own where it is modelled from
    its facts (`on_chip_ms`), else the runtime's (`RuntimeParams.band_for`)."""
    facts = on_chip_facts(hardware)
    return facts.band if facts is not None else params.band_for(flops)


def roofline_ms(stats: KernelStats, hardware: HardwareClass, vector: np.ndarray, *,
                single_thread: bool = False, serial_fraction: float = SERIAL_FRACTION,
                reference_core_gflops: float | None = None, io_bytes: float | None = None) -> float:
    """Latency of one inference (see the module docstring); `vector` = `as_vector()` layout.
    `io_bytes` (the piece's inputs and outputs) matters only to an on-chip accelerator."""
    facts = on_chip_facts(hardware)
    if facts is not None:
        return on_chip_ms(stats, hardware, facts, io_bytes)
    gflops, gbs = usable_peak(hardware, single_thread, serial_fraction)
    kind, flops, const, act, calls = _features(stats)
    eff = vector[:len(KINDS)][kind]
    e_bw = vector[len(KINDS)]
    launch, call, dispatch = vector[len(KINDS) + 1], vector[len(KINDS) + 2], vector[len(KINDS) + 3]
    nbytes = const + act
    if hardware.kind == "cpu":
        dram = dram_bytes(const, act, calls, cache_mb(hardware, cores_used(hardware, single_thread)) * 1e6)
        memory_ms = (dram / (min(e_bw, DRAM_EFFICIENCY_CAP) * gbs * 1e6)
                     + (nbytes - dram) / (e_bw * gbs * 1e6))
    else:
        memory_ms = nbytes / (e_bw * gbs * 1e6)
    compute_ms = flops / (eff * gflops * 1e6)
    scale = fixed_cost_scale(hardware, reference_core_gflops)
    per_kernel = launch + (dispatch * (flops > DISPATCH_FLOPS) if cores_used(hardware, single_thread) > 1 else 0.0)
    return float(np.sum(calls * (np.maximum(compute_ms, memory_ms) + per_kernel * scale))
                 + call * scale + hardware.overhead_ms)


def predict_ms(stats: KernelStats, batch: int, hardware: HardwareClass,
               params: RuntimeParams, io_bytes: float | None = None) -> float:
    """`io_bytes`: the piece's input and output bytes at batch 1 (fp32 model), if known."""
    return roofline_ms(stats.at_batch(batch), hardware, params.as_vector(),
                       single_thread=params.single_thread, serial_fraction=params.serial_fraction,
                       reference_core_gflops=params.core_gflops,
                       io_bytes=None if io_bytes is None else io_bytes * batch)
