"""The placement problem: every way each piece can run, settled before the solver sees it.

    network   locations, links, transfer times, bytes per dataflow edge (`Flow`)
    offers    the offers a spec allows, edge devices and their monthly cost
    runtimes  which profiled runtimes are worth planning with (exact dominance)
    records   `Option` (one way to run a piece, its numbers settled) and `SplitHead`
    options   every (offer, runtime, batch, replicas) option of a piece; exact option pruning
    split     split models: head on a site device, tail in a cloud pool
    segments  fleet segments (`Lane`) and the sets of them a pool may serve
    fleet     a model's options in every segment, pools shared by sets of segments
    colocate  pools of one instance type running several pieces, sized for them together
    core      `Problem` (immutable once built), `ProblemError`
    build     `build_problem(spec, profiles, offers, io_bytes, prune=True)`
"""

from placement.problem.build import build_problem
from placement.problem.colocate import arrival_groups, pool_waits_ms
from placement.problem.core import Problem, ProblemError
from placement.problem.network import SITE, Flow, flows_with_bytes, is_edge, transfer_ms
from placement.problem.offers import (
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    EdgeDevice,
    candidate_offers,
)
from placement.problem.options import prune_dominated_options
from placement.problem.records import Option, SplitHead
from placement.problem.runtimes import best_runtime_rows, planning_latencies, runtime_front
from placement.problem.segments import Lane, fleet_lanes, segment_subsets
from placement.spec import SINK, SOURCE

__all__ = [
    "Option", "SplitHead", "EdgeDevice", "Flow", "Lane", "Problem", "ProblemError", "build_problem",
    "transfer_ms", "is_edge", "SITE", "SOURCE", "SINK", "HOURS_PER_MONTH", "SECONDS_PER_MONTH",
    "candidate_offers", "best_runtime_rows", "runtime_front", "planning_latencies",
    "flows_with_bytes", "prune_dominated_options", "fleet_lanes", "segment_subsets",
    "arrival_groups", "pool_waits_ms",
]
