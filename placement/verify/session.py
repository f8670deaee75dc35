"""One verify session: the plan (given or made now), the scale this machine can carry (the plan
re-evaluated at it), the stages' artifacts, the bounded run and the comparison."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from profiles.errors import UserError

MAX_TOTAL_RPS = 200.0    # what one Python dispatcher carries with millisecond-accurate timing
MAX_SITE_STREAMS = 200


class VerifyError(UserError):
    pass


@dataclass
class VerifyResult:
    runnable: bool
    cannot_run: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)     # the comparison (report.compare)
    notes: list[str] = field(default_factory=list)
    # measured-served ProfileTable rows of the run (placement.verify.served), to store on request,
    # and why any stage has none
    served_rows: list[dict] = field(default_factory=list)
    not_stored: list[str] = field(default_factory=list)


def _busy_cores(plan) -> float:
    """Cores the plan keeps busy on this machine: a pool's replicas times its utilisation, a
    site device's utilisation (its pieces' shares sum to it; counted once per piece here). A pool
    of co-located pieces states the pool's utilisation on each: counted once."""
    pools = {p.pool: p.utilisation * p.replicas for p in plan.placements if p.pool_pieces}
    return sum(pools.values()) + sum(p.utilisation * (p.replicas if p.tier == "cloud" else 1)
                                     for p in plan.placements if not p.pool_pieces)


def evaluate_options(ws, assignment: dict, overrides):
    """The plan of these exact options (piece -> option id, split options included) under
    `overrides`, as the independent checker evaluates it."""
    from placement.evaluate import evaluate
    from placement.plan import make_plan
    from placement.solver import SolveResult

    problem = ws.problem(overrides, prune=False)
    chosen = {}
    for piece, option_id in assignment.items():
        match = [o for o in problem.options.get(piece, []) if o.id == option_id]
        if not match:
            raise VerifyError(f"the plan's option {option_id} for {piece} is not an option at the run's scale")
        chosen[piece] = match[0]
    evaluation = evaluate(problem, chosen)
    result = SolveResult(status="evaluated", assignment=assignment, objective="verify",
                         objective_value=evaluation.monthly_usd, best_bound=None, gap=None,
                         wall_time_s=0.0, workers=0, seed=0, time_limit_s=0.0,
                         num_options=sum(len(v) for v in problem.options.values()))
    return make_plan(problem, result, evaluation, tvm_version=None)


WATCH_BEFORE_S = 1.0


def available_cores(cores: int, others_cpu_share: float) -> float:
    """Cores free for the run: this machine's cores less those other processes kept busy just
    before it (at least a quarter of them). Watched, not the 1-minute load average: that still
    counts a run that ended a minute ago (a bench's previous case) and misses work that just
    started."""
    return max(0.25 * cores, cores * (1.0 - others_cpu_share))


def scaled_outcome(ws, plan, headroom: float, cores: float, has_site: bool):
    """(plan at the run's scale, sites, rate per site, scale note). One site when the plan has a
    site device (one device process); a pool-only plan keeps its sites' streams (up to 200).
    The rate is cut so the plan's busy cores fit `headroom` × the free cores (`cores`) and the
    dispatcher's limit; the plan is re-evaluated (same options) at that load."""
    from placement import api

    spec = ws.spec
    sites = 1 if has_site else min(spec.load.sites, MAX_SITE_STREAMS)
    rate = spec.load.rate_per_site_rps
    assignment = {p.piece: p.option for p in plan.placements}

    def at(sites_, rate_):
        if sites_ == spec.load.sites and abs(rate_ - spec.load.rate_per_site_rps) < 1e-12:
            return plan
        return evaluate_options(ws, assignment, api.Overrides(sites=sites_, rate_per_site_rps=rate_))

    scaled = at(sites, rate)
    factor = 1.0
    busy = _busy_cores(scaled)
    if busy > headroom * cores:
        factor = headroom * cores / busy
    if sites * rate * factor > MAX_TOTAL_RPS:
        factor = min(factor, MAX_TOTAL_RPS / (sites * rate))
    if factor < 1.0:
        rate *= factor
        scaled = at(sites, rate)
    note = (f"scale: {sites} site(s) of {spec.load.sites} at {rate:.4g} req/s each "
            f"(spec {spec.load.rate_per_site_rps:g}; rate x{factor:.3g}); {sites * rate:.4g} req/s in all; "
            f"the plan re-evaluated at this load")
    return scaled, sites, rate, note


def verify(ws, plan=None, *, duration_s: float = 60.0, headroom: float = 0.5, on_event=None,
           work_dir: str | Path | None = None, seed: int = 0, threads: int = 1) -> VerifyResult:
    """Run `plan` (default: plan now) here and compare; see the package docstring. Each worker
    runs ONNX Runtime with `threads` intra-op threads (1: the workers share this machine's cores
    with the dispatcher, and spinning threads there cost more than they give: on 2 cores, two
    threads for the one worker of a site-device plan put 26 % of its compute waiting for a core
    and its p95 wait from 24 to 114 ms)."""
    from placement.queueing import arrival_scv
    from placement.verify.prepare import cannot_run_here, prepare_stages
    from placement.verify.report import compare
    from placement.verify.run import arrival_times, run_plan
    from placement.verify.served import served_rows
    from placement.verify.topology import plan_topology
    from profiles.contention import CpuWatch, is_contended
    from profiles.hardware import local_cores, local_hardware_name

    say = on_event or (lambda msg: None)
    if plan is None:
        plan = ws.plan(analyse=False).plan
    if not plan.placements:
        raise VerifyError(f"the plan is {plan.status}: nothing to run")
    if not plan.feasible:
        say(f"note: the plan breaks {'; '.join(plan.violations)} (run anyway)")
    if any(p.segment for p in plan.placements):
        raise VerifyError("verify runs one site; a plan over fleet segments is not supported yet")
    topology = plan_topology(plan)
    local = local_hardware_name()
    cannot = cannot_run_here(topology, local)
    if cannot:
        return VerifyResult(False, cannot, notes=[f"this machine's hardware class is {local}; "
                                                  "docs/verify.md: plan against this machine's offers"])
    cores = local_cores()
    load = os.getloadavg()[0]
    with CpuWatch(min_s=WATCH_BEFORE_S) as before:
        pass
    others_before = before.result.others_cpu_share
    free = available_cores(cores, others_before)
    scaled, sites, rate, note = scaled_outcome(ws, plan, headroom, free, topology.has_site)
    note += f"; sized for {headroom:g} x {free:.2f} free core(s) of {cores}"
    say(note)
    if is_contended(others_before):
        say(f"note: other processes used {others_before:.0%} of this machine's CPU just before the run: "
            "they share the cores, and measured times include them")
    processes = sum(g.processes for g in topology.groups.values())
    if threads < cores:
        say(f"note: each worker runs {threads} ONNX Runtime thread(s) (--threads); `placement profile` "
            f"measures with this machine's {cores}, so compute here may be slower than such a profile "
            "(the stage table shows both; profile with the workers' threads, or store the run's rows with "
            "--store-profiles)")
    ca2 = arrival_scv(ws.spec.load.arrival, ws.spec.load.burstiness)
    arrivals = arrival_times(rate, sites, ca2, duration_s, seed)
    with tempfile.TemporaryDirectory(prefix="verify-", dir=work_dir) as folder:
        say(f"preparing {len(topology.stages)} stage(s) in {processes} process(es), "
            f"{threads} ONNX Runtime thread(s) each")
        specs = prepare_stages(ws, topology, Path(folder), threads, progress=say)
        drain = min(30.0, max(5.0, duration_s))
        with CpuWatch(with_children=True) as during:
            record = run_plan(topology, specs, folder, ws.spec.network, arrivals, duration_s, drain, say)
    data = compare(scaled, topology, record, ws, processes_note=(
        f"{processes} worker process(es) on {cores} core(s), {threads} thread(s) each"))
    data["load_average"] = load
    # other processes' share of the CPU (`profiles.contention`): the workers are this run's own
    data["machine"] = {"cores": cores, "free_cores": free, "others_cpu_share_before": others_before,
                       "others_cpu_share_during": during.result.others_cpu_share,
                       "contended": is_contended(during.result.others_cpu_share)}
    data["scale"] = {"sites": sites, "rate_per_site_rps": rate, "spec_sites": ws.spec.load.sites,
                     "spec_rate_per_site_rps": ws.spec.load.rate_per_site_rps,
                     "arrival": ws.spec.load.arrival, "arrival_scv": ca2, "note": note,
                     "duration_s": duration_s}
    rows, left_out = served_rows(ws, topology, data)
    return VerifyResult(True, [], data, notes=[note], served_rows=rows, not_stored=left_out)
