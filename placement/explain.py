"""Why no plan exists, and what each constraint of a plan costs.

Infeasible: CP-SAT's sufficient assumptions name the binding constraint groups; then the
nearest feasible values are solved for ("the fastest possible p95 is 73 ms"). Feasible: a
constraint binds when dropping it would improve the objective; its slack and that price are
reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from placement.evaluate import Evaluation, evaluate
from placement.problem import Problem, segment_subsets
from placement.solver import PlacementModel

GROUP_WORDS = {
    "slo": "the latency SLO",
    "budget": "the monthly budget",
    "memory": "edge device memory",
    "throughput": "edge device throughput (utilisation cap)",
    "site-share": "the share of sites that must meet the SLO",
}


@dataclass
class Explanation:
    binding: list[str]  # constraint groups that together make the spec infeasible
    messages: list[str] = field(default_factory=list)
    fastest_p95_ms: float | None = None
    fastest_monthly_usd: float | None = None
    cheapest_meeting_slo_usd: float | None = None
    largest_site_share: float | None = None  # mixed fleets: the most sites that can meet the SLO


@dataclass
class Slack:
    constraint: str
    limit: float
    value: float
    slack: float
    unit: str
    binding: bool
    detail: str = ""


def _unplaceable_group(why: str) -> str:
    """The constraint group behind a piece with no option (`problem.offers.why_no_option`):
    memory or throughput only when that is the one cause, else coverage (no usable profile)."""
    if why.startswith("every candidate is too small (memory)"):
        return "memory"
    if why.startswith("every candidate that can hold it is too slow"):
        return "throughput"
    return "coverage"


def explain_infeasible(problem: Problem, *, time_limit_s: float = 10.0, seed: int = 0,
                       workers: int = 2) -> Explanation:
    if problem.unplaceable:
        msgs = [f"{piece} cannot run on any candidate: {why}" for piece, why in problem.unplaceable.items()]
        binding = sorted({_unplaceable_group(why) for why in problem.unplaceable.values()})
        return Explanation(binding=binding, messages=msgs)

    grouped = PlacementModel(problem, groups=True)
    once = dict(time_limit_s=time_limit_s, seed=seed, workers=1)
    run = grouped.run("cost", enforce=grouped.group_literals, **once)
    if run.ok:
        return Explanation(binding=[], messages=["the spec is feasible"])
    binding = list(run.blamed)
    if not binding:  # unknown (time limit): say so rather than guess
        return Explanation(binding=[], messages=["no explanation found within the time limit"])
    # CP-SAT's core is sufficient, not minimal: drop each group whose removal keeps it infeasible.
    for group in list(binding):
        trial = grouped.run("cost", enforce=[g for g in binding if g != group], **once)
        if trial.status == "infeasible":
            binding.remove(group)

    out = Explanation(binding=binding)
    out.messages.append("infeasible because of " + " and ".join(GROUP_WORDS[g] for g in binding) + ".")
    pm = PlacementModel(problem)
    kw = dict(time_limit_s=time_limit_s, seed=seed, workers=workers)
    if "slo" in binding:
        pm.set_limits(slo_ms=None, budget_usd=problem.budget_usd)
        s = pm.run("latency", **kw)
        within = True
        if not s.ok:
            pm.set_limits(slo_ms=None, budget_usd=None)
            s = pm.run("latency", **kw)
            within = False
        if s.ok:
            ev = evaluate(problem, s.assignment)
            out.fastest_p95_ms, out.fastest_monthly_usd = ev.latency_ms, ev.monthly_usd
            where = "within the budget" if within else "at any cost"
            out.messages.append(
                f"the fastest possible p{problem.slo_percentile} {where} is {ev.latency_ms:,.1f} ms "
                f"(${ev.monthly_usd:,.2f}/month); the SLO asks for {problem.slo_ms:g} ms."
            )
    if "budget" in binding:
        pm.set_limits(slo_ms=problem.slo_ms, budget_usd=None)
        s = pm.run("cost", **kw)
        if s.ok:
            ev = evaluate(problem, s.assignment)
            out.cheapest_meeting_slo_usd = ev.monthly_usd
            over = ev.monthly_usd - problem.budget_usd
            out.messages.append(
                f"the cheapest plan meeting {problem.slo_ms:g} ms costs ${ev.monthly_usd:,.2f}/month, "
                f"${over:,.2f} over the budget of ${problem.budget_usd:,.2f}."
            )
    if problem.fleet and ("site-share" in binding or "slo" in binding):
        out.largest_site_share = _largest_site_share(problem, **kw)
        if out.largest_site_share is None:
            out.messages.append(f"no segment of the fleet can meet {problem.slo_ms:g} ms within the budget.")
        else:
            out.messages.append(
                f"at most {out.largest_site_share:.0%} of sites can meet {problem.slo_ms:g} ms within "
                f"the budget; the spec asks for {problem.min_site_share:.0%}."
            )
    for group in ("memory", "throughput"):
        if group in binding:
            out.messages.append(
                f"{GROUP_WORDS[group]} rules out putting the pieces together on one site device; "
                "add a larger device model or allow cloud offers."
            )
    return out


def _largest_site_share(problem: Problem, **kw) -> float | None:
    """The largest share of sites a plan can bring within the SLO: each share a set of segments
    makes, largest first, until one is feasible (a fleet has at most six segments)."""
    shares = sorted({round(sum(lane.share for lane in subset), 9)
                     for subset in segment_subsets(problem.lanes)}, reverse=True)
    for share in shares:
        if share >= problem.min_site_share - 1e-9:
            continue
        trial = replace(problem, min_site_share=share)
        if PlacementModel(trial).run("cost", **kw).ok:
            return share
    return None


def slack_report(problem: Problem, evaluation: Evaluation, objective: str = "cost", *,
                 time_limit_s: float = 10.0, seed: int = 0, workers: int = 2) -> list[Slack]:
    """Slack of every constraint of a feasible plan; `binding` = relaxing it improves the objective."""
    pm = PlacementModel(problem)
    kw = dict(time_limit_s=time_limit_s, seed=seed, workers=workers)
    out: list[Slack] = []

    pm.set_limits(slo_ms=None, budget_usd=problem.budget_usd)
    s = pm.run("cost", **kw)
    slo_binding, detail = False, ""
    if objective == "cost" and s.ok:
        free = s.objective_value
        if free < evaluation.monthly_usd - 0.01:
            slo_binding = True
            detail = f"without the SLO the cheapest plan costs ${free:,.2f}/month"
    out.append(Slack("slo", problem.slo_ms, evaluation.latency_ms,
                     problem.slo_ms - evaluation.latency_ms, "ms", slo_binding, detail))

    pm.set_limits(slo_ms=problem.slo_ms, budget_usd=None)
    s = pm.run("latency", **kw)
    budget_binding, detail = False, ""
    if objective == "latency" and s.ok:
        free = s.objective_value
        if free < evaluation.latency_ms - 0.01:
            budget_binding = True
            detail = f"without the budget the fastest plan takes {free:,.1f} ms"
    out.append(Slack("budget", problem.budget_usd, evaluation.monthly_usd,
                     problem.budget_usd - evaluation.monthly_usd, "USD/month", budget_binding, detail))

    for offer, (util, mem) in sorted(evaluation.device_load.items()):
        dev = problem.devices[offer]
        out.append(Slack(f"throughput {dev.label}", problem.utilisation_cap, util,
                         problem.utilisation_cap - util, "utilisation", util >= problem.utilisation_cap - 0.02))
        out.append(Slack(f"memory {dev.label}", dev.memory_mb, mem, dev.memory_mb - mem, "MB",
                         mem >= 0.98 * dev.memory_mb))
    return out
