"""Small hand-made instances whose numbers can be checked with a pocket calculator."""

from __future__ import annotations

import pandas as pd

from placement.problem import build_problem
from placement.spec import parse_spec
from placement.synthetic import EGRESS_SOURCE, EGRESS_TIERS
from pricing import table as ot
from profiles import table as pt


def offer_row(offer, tier, instance_type, hardware, *, provider="aws", region="r0", hourly=None,
              unit=None, power=None, memory_gib=16.0, spot=None, reserved_1y=None):
    return {
        ot.OFFER: offer, ot.TIER: tier, ot.PROVIDER: provider if tier == "cloud" else "edge",
        ot.REGION: region if tier == "cloud" else "site", ot.INSTANCE_TYPE: instance_type,
        ot.HARDWARE: hardware, ot.VCPUS: 4, ot.MEMORY_GIB: memory_gib, ot.ACCELERATOR: None,
        ot.ACCELERATOR_COUNT: 0, ot.ARCH: "x86_64", ot.HOURLY_USD: hourly,
        ot.SPOT_HOURLY_USD: spot, ot.RESERVED_1Y_HOURLY_USD: reserved_1y,
        ot.RESERVED_3Y_HOURLY_USD: None, ot.UNIT_USD: unit, ot.POWER_W: power,
        ot.PRICE_SOURCE: "test", ot.PRICE_DATE: "2026-01-01",
    }


def profile_row(piece, hardware, p50, p95, memory_mb=100.0, runtime="onnxruntime"):
    return {
        pt.PIECE: piece, pt.HARDWARE: hardware, pt.RUNTIME: runtime, pt.BATCH: 1,
        pt.LATENCY_MS_P50: p50, pt.LATENCY_MS_P95: p95, pt.MEMORY_MB: memory_mb,
        pt.SOURCE: "imported", pt.MEASURED_AT: "2026-01-01", pt.TVM_VERSION: "0.27.0",
        pt.ERROR_BAND: None,
    }


def one_model_spec(*, sites=100, rate=1.0, slo_ms=250.0, budget=1e6, uplink=5.0, rtt=20.0,
                   edge=("pi",), cloud_types=None):
    cloud = [{"provider": "aws", "regions": ["r0"]}]
    if cloud_types:
        cloud[0]["instance_types"] = list(cloud_types)
    return {
        "name": "one-model",
        "models": [{"name": "det", "onnx": "zoo:resnet18"}],
        "dataflow": [{"from": "source", "to": "det"}, {"from": "det", "to": "sink"}],
        "load": {"sites": sites, "rate_per_site_rps": rate},
        "slo": {"latency_ms": slo_ms, "percentile": 95},
        "monthly_budget_usd": budget,
        "hardware": {"edge": list(edge), "cloud": cloud},
        "network": {"uplink_mbps": uplink, "downlink_mbps": 100.0, "rtt_ms": {"r0": rtt}},
        "edge": {"amortisation_months": 36, "electricity_usd_per_kwh": 0.15},
        "solver": {"max_extra_replicas": 1},
    }


def one_model_tables():
    offers = pd.DataFrame([
        offer_row("edge:pi", "edge", "pi", "hw-pi", unit=120.0, power=6.0, memory_gib=4.0),
        offer_row("aws:r0:c1", "cloud", "c1", "hw-c1", hourly=0.1, spot=0.03, reserved_1y=0.063),
    ], columns=ot.OFFER_COLUMNS)
    profiles = pd.DataFrame([
        profile_row("det", "hw-pi", 100.0, 120.0),
        profile_row("det", "hw-c1", 10.0, 12.0),
        profile_row("det", "hw-c1", 30.0, 40.0, runtime="tvm"),
    ], columns=pt.PROFILE_COLUMNS)
    io_bytes = {"det": (150_528, 4_000)}
    return offers, profiles, io_bytes


def build(spec_data, offers, profiles, io_bytes):
    spec = parse_spec(spec_data, origin="test")
    return build_problem(spec, profiles, offers, io_bytes, egress_tiers=EGRESS_TIERS,
                         egress_source=EGRESS_SOURCE)


def write_single_model_spec(path, *, app: str, model: str, onnx_path) -> None:
    """A spec file for one real ONNX model with input x [1, 64] (CLI tests that profile it)."""
    path.write_text(f"""name: {app}
models:
  - name: {model}
    onnx: {onnx_path}
    inputs: {{x: [1, 64]}}
dataflow:
  - {{from: source, to: {model}, bytes: 256}}
  - {{from: {model}, to: sink}}
load: {{sites: 1, rate_per_site_rps: 1.0}}
slo: {{latency_ms: 300, percentile: 95}}
monthly_budget_usd: 1000
hardware:
  edge: [rpi5-8gb]
  cloud: [{{provider: aws, regions: [us-east-1], instance_types: [c7a.large]}}]
network: {{uplink_mbps: 20, downlink_mbps: 100, rtt_ms: {{us-east-1: 30}}}}
""")


def run_cli(monkeypatch, capsys, *args):
    """Run `placement ARGS` in-process: (exit code, stdout, stderr)."""
    import sys

    from placement.cli import main

    monkeypatch.setattr(sys, "argv", ["placement", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err
