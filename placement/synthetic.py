"""Random but realistic placement instances, for cross-checking the solver and for scale benches.

An instance is the same four inputs a real run has (spec, ProfileTable, OfferTable, I/O bytes),
so everything downstream is exercised exactly as in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from placement.spec import ApplicationSpec, parse_spec
from pricing import table as ot
from profiles import table as pt

EGRESS_TIERS = {
    "aws": ((100.0, 0.0), (10_240.0, 0.09), (40_960.0, 0.085), (102_400.0, 0.07), (float("inf"), 0.05)),
    "azure": ((100.0, 0.0), (10_240.0, 0.087), (40_960.0, 0.083), (102_400.0, 0.07), (float("inf"), 0.05)),
}
EGRESS_SOURCE = {p: f"synthetic copy of {p} list tiers" for p in EGRESS_TIERS}


@dataclass(frozen=True)
class Instance:
    spec: ApplicationSpec
    profiles: pd.DataFrame
    offers: pd.DataFrame
    io_bytes: dict
    egress_tiers: dict
    egress_source: dict


def synthetic_instance(
    n_pieces: int,
    n_cloud_offers: int,
    n_edge_devices: int = 2,
    *,
    seed: int = 0,
    regions: int = 2,
    sites: int = 20,
    slo_ms: float | None = None,
    budget_usd: float = 1e7,
    uplink_mbps: float = 20.0,
    max_extra_replicas: int = 2,
    batches: tuple[int, ...] = (1, 4),
    fleet_segments: int = 0,
    tail_spread: float = 0.0,
) -> Instance:
    """`fleet_segments` > 0: a mixed fleet of that many segments (sites split evenly, devices
    taken in turn from the edge devices) instead of a uniform one. `tail_spread` > 0: each
    (piece, hardware, runtime) gets its own p95/p50 ratio in [1, 1 + tail_spread] instead of
    1.15, so a runtime can have the lower p50 and the higher p95 (drawn from a second random
    stream: the rest of the instance stays the same)."""
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(n_pieces)]
    # A random DAG in topological order: every piece hangs off an earlier node.
    edges: list[tuple[str, str]] = []
    for i, name in enumerate(names):
        parent = "source" if i == 0 or rng.random() < 0.15 else names[int(rng.integers(0, i))]
        edges.append((parent, name))
        if i >= 2 and rng.random() < 0.2:
            extra = names[int(rng.integers(0, i))]
            if (extra, name) not in edges:
                edges.append((extra, name))
    has_out = {a for a, _ in edges}
    edges += [(n, "sink") for n in names if n not in has_out]

    region_names = [f"r{k}" for k in range(regions)]
    hardware = [f"hw-cloud-{k}" for k in range(n_cloud_offers)] + [
        f"hw-edge-{k}" for k in range(n_edge_devices)]
    speed = {h: float(rng.uniform(0.3, 3.0)) for h in hardware}
    for k in range(n_edge_devices):
        speed[f"hw-edge-{k}"] *= 3.0  # edge devices are slower

    offer_rows = []
    for k in range(n_cloud_offers):
        provider = "aws" if k % 2 == 0 else "azure"
        region = region_names[k % regions]
        hourly = round(float(rng.uniform(0.05, 2.0)) / speed[f"hw-cloud-{k}"] ** 0.5, 4)
        offer_rows.append({
            ot.OFFER: ot.cloud_offer_id(provider, region, f"it{k}"), ot.TIER: "cloud",
            ot.PROVIDER: provider, ot.REGION: region, ot.INSTANCE_TYPE: f"it{k}",
            ot.HARDWARE: f"hw-cloud-{k}", ot.VCPUS: 4, ot.MEMORY_GIB: 16.0,
            ot.ACCELERATOR: None, ot.ACCELERATOR_COUNT: 0, ot.ARCH: "x86_64",
            ot.HOURLY_USD: hourly, ot.SPOT_HOURLY_USD: round(hourly * 0.35, 4),
            ot.RESERVED_1Y_HOURLY_USD: round(hourly * 0.62, 4), ot.RESERVED_3Y_HOURLY_USD: None,
            ot.UNIT_USD: None, ot.POWER_W: None, ot.PRICE_SOURCE: "synthetic",
            ot.PRICE_DATE: "2026-01-01",
        })
    for k in range(n_edge_devices):
        offer_rows.append({
            ot.OFFER: ot.edge_offer_id(f"dev{k}"), ot.TIER: "edge", ot.PROVIDER: "edge",
            ot.REGION: "site", ot.INSTANCE_TYPE: f"dev{k}", ot.HARDWARE: f"hw-edge-{k}",
            ot.VCPUS: 4, ot.MEMORY_GIB: float(rng.choice([2.0, 4.0, 8.0])), ot.ACCELERATOR: None,
            ot.ACCELERATOR_COUNT: 0, ot.ARCH: "aarch64", ot.HOURLY_USD: None,
            ot.SPOT_HOURLY_USD: None, ot.RESERVED_1Y_HOURLY_USD: None,
            ot.RESERVED_3Y_HOURLY_USD: None, ot.UNIT_USD: float(rng.choice([60, 80, 250, 500])),
            ot.POWER_W: float(rng.uniform(4, 20)), ot.PRICE_SOURCE: "synthetic",
            ot.PRICE_DATE: "2026-01-01",
        })
    offers = pd.DataFrame(offer_rows, columns=ot.OFFER_COLUMNS)

    prof_rows = []
    for name in names:
        base = float(rng.uniform(1.0, 30.0))
        memory = float(rng.uniform(20, 600))
        # batch b takes (1 + slope * (b - 1)) times batch 1: accelerators batch well, CPUs less
        slope = float(rng.uniform(0.25, 0.9))
        for h in hardware:
            p50 = base * speed[h] * float(rng.uniform(0.9, 1.1))
            for runtime, factor in (("tvm", float(rng.uniform(0.8, 2.5))), ("onnxruntime", 1.0)):
                for batch in batches:
                    scale = 1.0 + slope * (batch - 1)
                    prof_rows.append({
                        pt.PIECE: name, pt.HARDWARE: h, pt.RUNTIME: runtime, pt.BATCH: batch,
                        pt.LATENCY_MS_P50: p50 * factor * scale,
                        pt.LATENCY_MS_P95: p50 * factor * scale * 1.15,
                        pt.MEMORY_MB: memory * (1 + 0.1 * (batch - 1)), pt.SOURCE: "imported",
                        pt.MEASURED_AT: "2026-01-01", pt.TVM_VERSION: "0.27.0", pt.ERROR_BAND: None,
                    })
    profiles = pd.DataFrame(prof_rows, columns=pt.PROFILE_COLUMNS)
    if tail_spread > 0:
        tails = np.random.default_rng([seed, 1])
        ratio = {key: 1.0 + tail_spread * float(tails.random()) for key in sorted(
            set(zip(profiles[pt.PIECE], profiles[pt.HARDWARE], profiles[pt.RUNTIME])))}
        profiles[pt.LATENCY_MS_P95] = [
            p50 * ratio[key] for p50, key in zip(
                profiles[pt.LATENCY_MS_P50],
                zip(profiles[pt.PIECE], profiles[pt.HARDWARE], profiles[pt.RUNTIME]))]
    io_bytes = {n: (int(rng.choice([4_096, 150_528, 602_112])), int(rng.choice([4_000, 40_000])))
                for n in names}

    spec_data = {
        "name": f"synthetic-{n_pieces}x{n_cloud_offers}-s{seed}",
        "models": [{"name": n, "onnx": "zoo:resnet18", "calls_per_request": 1} for n in names],
        "dataflow": [{"from": a, "to": b} for a, b in edges],
        "load": {"sites": sites, "rate_per_site_rps": float(rng.uniform(0.2, 2.0))},
        "slo": {"latency_ms": slo_ms or float(40 * n_pieces ** 0.5 + 60), "percentile": 95},
        "monthly_budget_usd": budget_usd,
        "hardware": {
            "edge": [f"dev{k}" for k in range(n_edge_devices)],
            "cloud": [{"provider": p, "regions": region_names} for p in ("aws", "azure")],
        },
        "network": {"uplink_mbps": uplink_mbps, "downlink_mbps": 100.0,
                    "rtt_ms": {r: float(rng.uniform(10, 80)) for r in region_names}},
        "solver": {"max_extra_replicas": max_extra_replicas},
    }
    if fleet_segments:
        counts = [sites // fleet_segments + (1 if k < sites % fleet_segments else 0)
                  for k in range(fleet_segments)]
        spec_data["hardware"]["edge"] = []
        spec_data["fleet"] = [{"name": f"seg{k}", "share": counts[k] / sites,
                               "device": f"dev{k % n_edge_devices}"} for k in range(fleet_segments)]
    spec = parse_spec(spec_data, origin="synthetic")
    return Instance(spec, profiles, offers, io_bytes, EGRESS_TIERS, EGRESS_SOURCE)
