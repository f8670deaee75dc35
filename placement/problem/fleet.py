"""Mixed fleets: segments of sites with their own devices, each running its own copy of the
dataflow, sharing cloud pools with any set of other segments."""

from __future__ import annotations

import dataclasses

from placement.problem.options import OptionInputs, piece_options, prune_dominated_options
from placement.problem.records import Option
from placement.problem.segments import Lane, segment_subsets
from placement.problem.split import composite, cuts


def pooled(option: Option, lane: Lane, model: str, segments: tuple[str, ...]) -> Option:
    """`option` as `lane`'s copy of a pool that serves `segments` together."""
    tag = "+".join(segments)
    return dataclasses.replace(option, piece=f"{lane.segment}/{model}", id=f"{option.id}@{tag}",
                               pool=f"{model}:{option.id}@{tag}", pool_segments=segments)


def fleet_options(inputs: OptionInputs, network, lanes: list[Lane], model: str, calls: float,
                  split, io_bytes: dict) -> tuple[dict, list[str]]:
    """Options of one model in every segment (segment -> options): its own device, or a cloud
    pool shared with any subset of the other segments (sized for their traffic together), or
    split. Also the cloud offers left out for having no price."""
    by_lane: dict[str, list[Option]] = {lane.segment: [] for lane in lanes}
    unpriced: list[str] = []
    for lane in lanes:
        edge = piece_options(inputs, model, calls, lane=lane, tiers=("edge",))[0]
        by_lane[lane.segment] += [dataclasses.replace(o, piece=f"{lane.segment}/{model}") for o in edge]
    model_cuts = list(cuts(model, split, inputs.runtimes, io_bytes))
    # The head of a cut on each segment's own device (the fastest runtime), once per cut.
    heads: dict[tuple[str, str], Option] = {}
    for tensor, head, _ in model_cuts:
        for lane in lanes:
            found = piece_options(inputs, head, calls, lane=lane, tiers=("edge",))[0]
            if found:
                heads[tensor, lane.segment] = min(found, key=lambda o: (o.latency_ms, o.id))
    prune = prune_dominated_options if inputs.prune else list
    for subset in segment_subsets(lanes):
        names = tuple(lane.segment for lane in subset)
        share = sum(lane.share for lane in subset)
        cloud, unpriced = piece_options(inputs, model, calls, share=share, tiers=("cloud",))
        # Pruned per pool (same subset): exact, a pool's numbers are the same in each segment.
        for o in prune(cloud):
            for lane in subset:
                by_lane[lane.segment].append(pooled(o, lane, model, names))
        for tensor, head, tail in model_cuts:
            if any((tensor, name) not in heads for name in names):
                continue  # a segment whose device cannot run the head
            cut_bytes = float(io_bytes[head][1]) * calls
            tails = piece_options(inputs, tail, calls, share=share, tiers=("cloud",))[0]
            for t in prune(tails):
                for lane in subset:
                    h = heads[tensor, lane.segment]
                    by_lane[lane.segment].append(
                        pooled(composite(network, model, tensor, h, t, cut_bytes), lane, model, names))
    return by_lane, unpriced
