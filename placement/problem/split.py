"""Split models (Neurosurgeon-style): a head on a site device, the cut tensor over the uplink,
a tail in a cloud pool, as one option of the whole model."""

from __future__ import annotations

import dataclasses

from placement.problem.network import transfer_ms
from placement.problem.options import OptionInputs, piece_options
from placement.problem.records import Option, SplitHead
from placement.problem.runtimes import RuntimeIndex


def cuts(model: str, split, runtimes: RuntimeIndex, io_bytes: dict):
    """(tensor, head piece, tail piece) for each profiled cut of a model the spec lets split."""
    if split == "none":
        return
    profiled = runtimes.pieces()
    wanted = None if split == "auto" else set(split)
    for head in sorted(p for p in profiled if p.startswith(f"{model}@") and p.endswith(":head")):
        tensor = head[len(model) + 1:-len(":head")]
        tail = f"{model}@{tensor}:tail"
        if tail in profiled and head in io_bytes and (wanted is None or tensor in wanted):
            yield tensor, head, tail


def composite(network, model: str, tensor: str, h: Option, t: Option, cut_bytes: float) -> Option:
    """Head option `h` on a site device, cut tensor over the uplink, tail option `t` in a pool."""
    return dataclasses.replace(
        t, id=f"split@{tensor}:{h.offer}+{t.id}", piece=model, cut=tensor, cut_bytes=cut_bytes,
        cut_transfer_ms=transfer_ms(network, h.location, t.location, cut_bytes),
        compute_ms_p95=h.compute_ms_p95 + t.compute_ms_p95,
        wait_ms=h.wait_ms + t.wait_ms,
        latency_source=weaker_source(h.latency_source, t.latency_source),
        error_band=max(h.error_band or 0.0, t.error_band or 0.0) or None,
        head=SplitHead(offer=h.offer, location=h.location, device=h.instance_type,
                       hardware=h.hardware, runtime=h.runtime, latency_ms=h.latency_ms,
                       utilisation=h.utilisation, memory_mb=h.memory_mb,
                       latency_source=h.latency_source, piece=h.piece, tail_piece=t.piece),
    )


def split_options(inputs: OptionInputs, network, model: str, calls: float, split,
                  io_bytes: dict) -> list[Option]:
    """Every (cut, head device, tail pool) of a model in a uniform fleet."""
    out: list[Option] = []
    for tensor, head, tail in cuts(model, split, inputs.runtimes, io_bytes):
        cut_bytes = float(io_bytes[head][1]) * calls
        heads = piece_options(inputs, head, calls, tiers=("edge",))[0]
        tails = piece_options(inputs, tail, calls, tiers=("cloud",))[0]
        out += [composite(network, model, tensor, h, t, cut_bytes) for h in heads for t in tails]
    return out


_SOURCE_RANK = ["estimated", "imported", "measured-rpc", "measured-local", "measured-served"]


def weaker_source(a: str, b: str) -> str:
    """A split option's latency is only as trustworthy as its less trustworthy half."""
    rank = {s: i for i, s in enumerate(_SOURCE_RANK)}
    return min((a, b), key=lambda s: rank.get(s, -1))
