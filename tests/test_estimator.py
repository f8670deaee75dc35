"""The calibrated estimator: kernel statistics, the roofline, the fit, leave-one-out, rows."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from profiles.cache import ProfileCache
from profiles.calibration import (
    ASSUMED,
    FAMILY_TRANSFER,
    KINDS,
    Calibration,
    Kernel,
    KernelStats,
    RuntimeParams,
    Sample,
    calibrate,
    current_calibration,
    default_calibration,
    fit_runtime,
    kernel_stats_many,
    leave_one_model_out,
    onnx_kernel_stats,
    predict_ms,
    save_calibration,
    usable_peak,
)
from profiles.estimate import calibrated_rows
from profiles.estimate_hardware import SERIAL_FRACTION, cache_mb, speedup
from profiles.estimate_model import DISPATCH_FLOPS
from profiles.hardware import HardwareClass, get_hardware, local_hardware
from profiles.measure import MeasureConfig
from profiles.onnx_prep import prepare_onnx
from profiles.paths import CACHE_ENV
from profiles.profiler import PieceSource, profile_pieces
from profiles.table import (
    BATCH,
    ERROR_BAND,
    HARDWARE,
    LATENCY_MS_P50,
    LATENCY_MS_P95,
    MEMORY_MB,
    PIECE,
    RUNTIME,
    SOURCE,
    validate_profile_table,
)

FAST = MeasureConfig(warmup_runs=1, repeat=5, min_repeat_ms=1.0, max_measure_s=0.5, timeout_s=120)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def conv_mlp(op_after: str = "Relu") -> onnx.ModelProto:
    """Conv(3→8, 3x3) → `op_after` → Flatten → MatMul(512→10), batch symbolic."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((512, 10)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node(op_after, ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["out"])]
    graph = helper.make_graph(
        nodes, "conv_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


SHAPES = {"input": [1, 3, 8, 8]}
CONV_FLOPS = 2 * (8 * 8 * 8) * (3 * 9)
MATMUL_FLOPS = 2 * 10 * 512


def cpu(name="cpu", cores=2, gflops=200.0, bw=20.0) -> HardwareClass:
    return HardwareClass(name=name, kind="cpu", arch="x86_64", cores=cores,
                         tvm_target={"kind": "llvm"}, peak_gflops=gflops, mem_bandwidth_gbs=bw,
                         sources=["test"])


# --- kernel statistics --------------------------------------------------------------------------

def test_onnx_kernel_stats_count_flops_and_bytes():
    stats = onnx_kernel_stats(prepare_onnx(conv_mlp(), SHAPES))
    by_kind = stats.by_kind()
    assert by_kind["conv"]["flops"] == CONV_FLOPS
    assert by_kind["matmul"]["flops"] == MATMUL_FLOPS
    assert by_kind["free"]["flops"] == 0 and stats.method == "onnx" and stats.batch == 1
    conv = next(k for k in stats.kernels if k.kind == "conv")
    assert conv.const_bytes == 8 * 3 * 9 * 4  # the weights
    assert conv.act_bytes == (3 * 64 + 8 * 64) * 4  # input and output


def test_tir_kernel_stats_match_the_graph_and_fall_back_for_unimportable_ops():
    good = prepare_onnx(conv_mlp(), SHAPES)
    bad = prepare_onnx(conv_mlp("Celu"), SHAPES)  # TVM's importer has no Celu
    tir, fallback = kernel_stats_many([("good", good, 1), ("bad", bad, 1)], timeout_s=300)
    assert tir.method == "tir" and fallback.method == "onnx"
    by_kind = tir.by_kind()
    # the fused conv kernel also counts its epilogue (the ReLU's max): a little over the MACs
    assert CONV_FLOPS <= by_kind["conv"]["flops"] <= CONV_FLOPS * 1.05
    assert by_kind["matmul"]["flops"] == pytest.approx(MATMUL_FLOPS, rel=0.05)
    assert sum(k.const_bytes for k in tir.kernels) == pytest.approx((8 * 27 + 5120) * 4)
    assert fallback.by_kind()["conv"]["flops"] == CONV_FLOPS


def test_batch_scaling_keeps_weights():
    stats = KernelStats((Kernel("k", "conv", 100.0, 40.0, 10.0, 2),), 1, "tir")
    four = stats.at_batch(4)
    assert four.kernels[0].flops == 400.0 and four.kernels[0].act_bytes == 40.0
    assert four.kernels[0].const_bytes == 40.0 and four.flops == 800.0
    assert KernelStats.from_dict(four.to_dict()) == four


# --- roofline -----------------------------------------------------------------------------------

def params(**eff) -> RuntimeParams:
    e = {k: eff.get(k, 0.5) for k in KINDS}
    return RuntimeParams(efficiency=e, bandwidth_efficiency=eff.get("bw", 0.5),
                         launch_ms=eff.get("launch", 0.0), error_band=0.2, source="test")


def test_roofline_compute_and_memory_bound():
    hw = cpu(gflops=100.0, bw=10.0)
    compute = KernelStats((Kernel("c", "conv", 1e9, 0.0, 1e3, 1),), 1, "tir")
    memory = KernelStats((Kernel("m", "other", 1e3, 0.0, 1e8, 1),), 1, "tir")
    # 1 GFLOP at 50 % of one core's 50 GFLOP/s, times the batch-1 speed-up of 2 cores (not 2)
    two_cores = 2 / (1 + SERIAL_FRACTION)
    assert speedup(2) == pytest.approx(two_cores) and speedup(1) == 1.0
    assert predict_ms(compute, 1, hw, params()) == pytest.approx(1e9 / (0.5 * 50e9 * two_cores) * 1e3)
    # 100 MB of activations do not fit in cache: at 50 % of 10 GB/s = 20 ms
    assert predict_ms(memory, 1, hw, params()) == pytest.approx(20.0)
    assert predict_ms(compute, 2, hw, params()) == pytest.approx(2 * predict_ms(compute, 1, hw, params()))
    assert predict_ms(compute, 1, hw, params(launch=1.0)) == pytest.approx(
        predict_ms(compute, 1, hw, params()) + 1.0)
    # untuned TVM runs on one core of the class
    assert usable_peak(hw, single_thread=True) == (50.0, 5.0)
    single = params().model_copy(update={"single_thread": True})
    assert predict_ms(compute, 1, hw, single) == pytest.approx(40.0)


def _cpu_of(mcpu: str, cores: int, gflops: float, bw: float, arch: str = "x86_64") -> HardwareClass:
    return HardwareClass(name=f"{mcpu}-{cores}c", kind="cpu", arch=arch, cores=cores,
                         tvm_target={"kind": "llvm", "mcpu": mcpu}, peak_gflops=gflops,
                         mem_bandwidth_gbs=bw, sources=["test"])


def test_batch_one_threads_do_not_scale_perfectly():
    one, eight = _cpu_of("znver4", 1, 100.0, 10.0), _cpu_of("znver4", 8, 800.0, 80.0)
    conv = KernelStats((Kernel("c", "conv", 4e9, 0.0, 1e3, 1),), 1, "tir")
    ratio = predict_ms(conv, 1, one, params()) / predict_ms(conv, 1, eight, params())
    assert ratio == pytest.approx(speedup(8)) and 2.0 < ratio < 8.0


def test_cache_credit_only_where_the_bytes_fit():
    """A bandwidth efficiency above 1 (this machine's large L3) applies to bytes that fit in the
    cache of the cores used; on a board with a small cache the same kernel streams from DRAM."""
    big = _cpu_of("znver4", 4, 400.0, 10.0)  # 4 MB of L2 and a 16 MB share of L3
    small = _cpu_of("cortex-a72", 4, 400.0, 10.0, arch="aarch64")  # 1 MB L2 for all four cores
    assert cache_mb(big) > 8 > 1 == cache_mb(small)
    kernel = KernelStats((Kernel("m", "other", 1e3, 0.0, 4e6, 1),), 1, "tir")  # 4 MB of activations
    fast = params(bw=4.0)
    assert predict_ms(kernel, 1, big, fast) == pytest.approx(4e6 / (4.0 * 10e9) * 1e3, rel=1e-4)
    assert predict_ms(kernel, 1, small, fast) == pytest.approx(4e6 / (1.0 * 10e9) * 1e3, rel=1e-4)
    # weights stay in cache between calls only when all of them fit
    weights = KernelStats((Kernel("w", "other", 1e3, 2e6, 1e3, 2),), 1, "tir")  # 4 MB in all
    assert predict_ms(weights, 1, big, fast) < predict_ms(weights, 1, small, fast)


def test_fixed_costs_scale_with_core_speed_not_core_count():
    tiny = KernelStats((Kernel("k", "other", 1e3, 1e2, 1e2, 3),), 1, "tir")
    fixed = params(launch=0.002).model_copy(update={"call_ms": 0.01, "core_gflops": 100.0})
    twin = _cpu_of("znver4", 8, 800.0, 80.0)  # cores as fast as the fit machine's
    slow = _cpu_of("cortex-a76", 4, 100.0, 8.0, arch="aarch64")  # 25 GFLOP/s per core
    assert predict_ms(tiny, 1, twin, fixed) == pytest.approx(0.01 + 3 * 0.002, rel=0.01)
    assert predict_ms(tiny, 1, slow, fixed) == pytest.approx(4 * (0.01 + 3 * 0.002), rel=0.01)
    # a kernel big enough to be split over threads also pays the thread pool's dispatch, on more
    # than one core only
    split = KernelStats((Kernel("k", "matmul", 10 * DISPATCH_FLOPS, 1e2, 1e2, 1),), 1, "tir")
    pooled = fixed.model_copy(update={"dispatch_ms": 0.5})
    one_core = _cpu_of("znver4", 1, 100.0, 10.0)
    assert predict_ms(split, 1, twin, pooled) - predict_ms(split, 1, twin, fixed) == pytest.approx(0.5, rel=1e-3)
    assert predict_ms(split, 1, one_core, pooled) == pytest.approx(predict_ms(split, 1, one_core, fixed))
    assert predict_ms(tiny, 1, twin, pooled) == pytest.approx(predict_ms(tiny, 1, twin, fixed))


def test_band_is_multiplicative_and_comes_from_models_of_the_same_size():
    small_errors = [(4.0 + 0.1 * i, math.log(2.0) * (-1) ** i) for i in range(8)]  # 2x either way
    big_errors = [(9.0 + 0.1 * i, math.log(1.1) * (-1) ** i) for i in range(8)]  # 10 %
    p = params().model_copy(update={"residuals": small_errors + big_errors, "error_band": 0.9})
    assert p.band_for(10 ** 4.3) == pytest.approx(1.0, rel=1e-6)  # ×/÷ 2
    assert p.band_for(10 ** 9.3) == pytest.approx(0.1, rel=1e-6)
    assert p.band_for(None) == 0.9 and params().band_for(1e9) == 0.2  # no residuals: the overall band
    moved = p.model_copy(update={"transfer_band": 1.0})  # another instruction set: bands multiply
    assert moved.band_for(10 ** 9.3) == pytest.approx(1.1 * 2.0 - 1.0)


def _synthetic_models(seed: int = 0) -> dict[str, KernelStats]:
    rng = np.random.default_rng(seed)
    models = {}
    for m in range(8):
        kernels = []
        for i in range(12):
            kind = KINDS[(i + m) % len(KINDS)]
            flops = float(rng.uniform(1e6, 5e8)) if kind != "other" else float(rng.uniform(1e4, 1e6))
            kernels.append(Kernel(f"k{i}", kind, flops, float(rng.uniform(1e3, 1e6)),
                                  float(rng.uniform(1e4, 1e7)), int(rng.integers(1, 3))))
        models[f"m{m}"] = KernelStats(tuple(kernels), 1, "tir")
    return models


def test_fit_recovers_efficiencies_and_loo_is_small_without_noise():
    hw = cpu()
    truth = params(conv=0.3, dwconv=0.08, matmul=0.4, other=0.1, bw=0.6, launch=0.01)
    models = _synthetic_models()
    samples = [Sample(name, "onnxruntime", b, predict_ms(st, b, hw, truth), st)
               for name, st in models.items() for b in (1, 2, 4)]
    fitted = fit_runtime(samples, hw, "onnxruntime")
    for kind in ("conv", "matmul", "dwconv"):
        assert fitted.efficiency[kind] == pytest.approx(truth.efficiency[kind], rel=0.1), kind
    loo = leave_one_model_out(samples, hw, "onnxruntime")
    assert loo.median_error < 0.05 and set(loo.per_model()) == set(models)
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_model_out(samples, hw, "onnxruntime", groups={m: "one" for m in models})


def test_calibrate_error_band_is_p90_of_loo_errors():
    hw = cpu()
    truth = params(conv=0.3, matmul=0.4, bw=0.6, launch=0.01)
    rng = np.random.default_rng(2)
    samples = [Sample(name, "tvm", 1, predict_ms(st, 1, hw, truth) * float(rng.uniform(0.7, 1.3)),
                      st) for name, st in _synthetic_models(1).items()]
    fitted = calibrate(samples, hw)["tvm"]
    loo = leave_one_model_out(samples, hw, "tvm")
    assert fitted.error_band == pytest.approx(max(loo.p90_error, 0.05))
    assert fitted.median_error == pytest.approx(loo.median_error)
    assert "leave-one-model-out" in fitted.source and fitted.single_thread


# --- estimated rows ---------------------------------------------------------------------------

def _local_rows(local: HardwareClass) -> pd.DataFrame:
    return pd.DataFrame([
        {PIECE: "p", HARDWARE: local.name, RUNTIME: rt, BATCH: b, LATENCY_MS_P50: ms * b,
         LATENCY_MS_P95: ms * b * 1.1, MEMORY_MB: 30.0 * b, SOURCE: "measured-local",
         "measured_at": "2025-01-01T00:00:00+00:00", "tvm_version": "0.27", ERROR_BAND: math.nan}
        for rt, ms in (("tvm", 2000.0), ("onnxruntime", 60.0)) for b in (1, 2)])


def test_gpu_rows_come_from_the_roofline_not_from_cpu_latency():
    local = local_hardware()
    gpu = get_hardware("nvidia-t4")
    stats = {"p": KernelStats((Kernel("conv", "conv", 3.6e9, 4.7e7, 2.5e7, 1),), 1, "tir")}
    rows = calibrated_rows(_local_rows(local), local, gpu, stats, default_calibration())
    rows = rows[rows[RUNTIME] == "tvm"]  # ONNX Runtime's GPU providers: tests/test_gpu_runtimes.py
    assert list(rows[BATCH]) == [1, 2]
    expected = predict_ms(stats["p"], 1, gpu, ASSUMED[("gpu", "tvm")])
    assert rows[LATENCY_MS_P50].iloc[0] == pytest.approx(expected)
    assert rows[LATENCY_MS_P50].iloc[0] < 30.0  # the untuned CPU build took 2000 ms
    assert (rows[ERROR_BAND] == ASSUMED[("gpu", "tvm")].error_band).all()
    assert (rows[LATENCY_MS_P95] >= rows[LATENCY_MS_P50]).all()
    assert list(rows[MEMORY_MB]) == [30.0, 60.0]  # the local figure at each batch


def test_cpu_rows_use_the_calibration_and_carry_each_batch():
    local = local_hardware()
    pi = get_hardware("x86-zen4-4c")  # same instruction set as the fit: used as fitted
    stats = {"p": KernelStats((Kernel("conv", "conv", 3.6e9, 4.7e7, 2.5e7, 1),), 1, "tir")}
    calibration = Calibration(cpu={"tvm": params(conv=0.02).model_copy(
        update={"single_thread": True, "error_band": 0.3}), "onnxruntime": params(conv=0.4)})
    rows = calibrated_rows(_local_rows(local), local, pi, stats, calibration)
    table = validate_profile_table(rows)
    assert sorted(zip(table[RUNTIME], table[BATCH])) == [("onnxruntime", 1), ("onnxruntime", 2),
                                                         ("tvm", 1), ("tvm", 2)]
    tvm1 = table[(table[RUNTIME] == "tvm") & (table[BATCH] == 1)].iloc[0]
    assert tvm1[LATENCY_MS_P50] == pytest.approx(
        predict_ms(stats["p"], 1, pi, calibration.cpu["tvm"]))
    assert tvm1[ERROR_BAND] == 0.3 and (table[SOURCE] == "estimated").all()
    # a piece without statistics falls back to the provisional ratio (and its ±50 %)
    fallback = calibrated_rows(_local_rows(local), local, pi, {}, calibration)
    assert (fallback[ERROR_BAND] == 0.5).all()


def test_a_cpu_fit_does_not_carry_over_to_another_instruction_set_unchanged():
    local = local_hardware()
    arm = get_hardware("arm-cortex-a76-4c")
    stats = {"p": KernelStats((Kernel("conv", "conv", 3.6e9, 4.7e7, 2.5e7, 1),), 1, "tir")}
    calibration = Calibration(cpu={"onnxruntime": params(conv=0.9).model_copy(update={"error_band": 0.3})})
    rows = validate_profile_table(calibrated_rows(_local_rows(local), local, arm, stats, calibration))
    ort = rows[rows[RUNTIME] == "onnxruntime"]
    assert (ort[ERROR_BAND] >= 1.0).all()  # at least ×/÷ 2: the fit's band times the transfer band
    moved = calibration.params(arm, "onnxruntime")
    # every kind scaled by the Arm family's ratio (fitted on published figures), not capped at
    # one level: a cap made convolutions as slow as depthwise ones
    ratio = FAMILY_TRANSFER["aarch64"].compute_ratio
    assert ratio < 1 and moved.efficiency["conv"] == pytest.approx(0.9 * ratio)
    assert moved.efficiency["conv"] / moved.efficiency["dwconv"] == pytest.approx(0.9 / 0.5)
    assert ort[ort[BATCH] == 1].iloc[0][LATENCY_MS_P50] == pytest.approx(predict_ms(stats["p"], 1, arm, moved))


def test_calibration_saved_in_the_store_is_used(tmp_path):
    cache = ProfileCache(tmp_path / "profiles")
    assert current_calibration(cache.store).fitted_on.endswith("(built in)")
    saved = Calibration(cpu={"onnxruntime": params(conv=0.123)}, fitted_on="here")
    save_calibration(saved, cache.store)
    current = current_calibration(cache.store)
    assert current.fitted_on == "here" and current.cpu["onnxruntime"] == saved.cpu["onnxruntime"]
    # a runtime the saved fit predates keeps the built-in fit for it
    from profiles.calibration import default_calibration

    built_in = default_calibration().cpu
    assert all(current.cpu[k] == built_in[k] for k in set(built_in) - set(saved.cpu))


def test_profile_pieces_estimates_with_kernel_stats(tmp_path):
    path = tmp_path / "conv_mlp.onnx"
    onnx.save(conv_mlp(), str(path))
    pieces = [PieceSource(piece="convmlp", onnx_path=path, input_shapes=SHAPES)]
    cache = ProfileCache(tmp_path / "profiles")
    report = profile_pieces(pieces, ["arm-cortex-a76-4c", "nvidia-t4"], config=FAST, cache=cache)
    table = validate_profile_table(report.table)
    assert report.kernel_stats["convmlp"].method == "tir"
    estimated = table[table[SOURCE] == "estimated"]
    # OpenVINO (measured here where installed) is estimated on the Arm class from its built-in fit
    from profiles.openvino_adapter import openvino_available

    assert set(zip(estimated[HARDWARE], estimated[RUNTIME])) == {
        ("arm-cortex-a76-4c", "tvm"), ("arm-cortex-a76-4c", "onnxruntime"), ("nvidia-t4", "tvm"),
        ("nvidia-t4", "onnxruntime-cuda"), ("nvidia-t4", "onnxruntime-trt"),  # from the onnxruntime rows
        *((("arm-cortex-a76-4c", "openvino"),) if openvino_available() else ())}
    assert (estimated[ERROR_BAND] > 0).all() and estimated[ERROR_BAND].notna().all()
    agreement = report.agreement()
    assert list(agreement["piece"]) == ["convmlp"] and agreement["max_rel_diff"].iloc[0] < 1e-4
    # a second run reads the statistics from the cache (no TVM child)
    import profiles.profiler as profiler_module

    def boom(*a, **k):
        raise AssertionError("kernel statistics must come from the cache")

    original = profiler_module.kernel_stats_many
    profiler_module.kernel_stats_many = boom
    try:
        again = profile_pieces(pieces, ["arm-cortex-a76-4c"], config=FAST, cache=cache)
    finally:
        profiler_module.kernel_stats_many = original
    assert again.kernel_stats["convmlp"] == report.kernel_stats["convmlp"]


def test_a_cpu_the_catalog_does_not_know_gets_measured_peaks_once(tmp_path, monkeypatch):
    import profiles.hardware as hw

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    peaks = hw.measured_peaks("x86-unknown-2c", 2)
    # a GEMM and a copy really ran: figures a 2-thread CPU can reach, not an assumed clock
    assert 5.0 < peaks["peak_gflops"] < 20_000 and 0.5 < peaks["mem_bandwidth_gbs"] < 2_000
    assert (tmp_path / "hardware" / "x86-unknown-2c.json").is_file()

    def no_second_measurement(*_):
        raise AssertionError("measured again")

    monkeypatch.setattr(hw, "_gemm_session", no_second_measurement)
    assert hw.measured_peaks("x86-unknown-2c", 2) == peaks  # read back from the cache dir
    with pytest.raises(AssertionError, match="measured again"):
        hw.measured_peaks("x86-unknown-2c", 4)  # other cores: a new measurement


def test_a_small_model_is_estimated_at_its_fixed_costs_on_a_near_twin_class():
    """Issue 15 item 5: a model whose work is negligible costs the runtime's fixed costs, fitted
    on small pieces here: the same on a class with cores like this machine's, whatever its core
    count (not 15x more, as a per-launch cost fitted on big models made it), more on slower
    cores, and its band is the band of small fitted models."""
    tiny = KernelStats(tuple(Kernel(f"k{i}", "matmul", 2e3, 4e3, 1e3, 1) for i in range(6)), 1, "tir")
    ort = default_calibration().cpu["onnxruntime"]
    here = predict_ms(tiny, 1, get_hardware("x86-zen4-2c"), ort)
    assert here == pytest.approx(ort.call_ms + 6 * ort.launch_ms, rel=0.05)
    for twin in ("x86-zen4-4c", "x86-zen4-16c", "x86-zen4-1c"):
        assert predict_ms(tiny, 1, get_hardware(twin), ort) == pytest.approx(here, rel=0.05), twin
    assert predict_ms(tiny, 1, get_hardware("arm-cortex-a76-4c"),
                      default_calibration().params(get_hardware("arm-cortex-a76-4c"), "onnxruntime")) > 2 * here
    small_band, big_band = ort.band_for(tiny.flops), ort.band_for(1e10)
    assert small_band != big_band and small_band == ort.band_for(tiny.flops * 2)


def test_a_calibration_stored_for_an_older_estimator_model_is_not_used(tmp_path):
    cache = ProfileCache(tmp_path / "profiles")
    old = Calibration(cpu={"onnxruntime": params(conv=0.123)}, fitted_on="model 1").model_dump()
    del old["model_version"]  # stored before the field existed: estimator model 1
    cache.store.put_calibration("cpu", old)
    assert current_calibration(cache.store).fitted_on.endswith("(built in)")
