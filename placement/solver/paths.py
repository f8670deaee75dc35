"""Static path bounds: per piece and place, the fastest a request can bring the piece its
input, and the fastest its output can get back to the site. Pure data from the `Problem`, in
the model's own rounded microseconds, so they never cut a plan the model accepts."""

from __future__ import annotations

from placement.problem import SINK, SITE, SOURCE, Problem
from placement.solver.units import MICRO, us_up, usd


def static_path_bounds(problem: Problem) -> tuple[dict, dict]:
    """`head[piece, entry]`: the fastest way any request can bring the piece its input at that
    entry; `tail[piece, location]`: the fastest way from its output at that location back to the
    site (absent when no path leads from the piece to the site). A cloud piece must pay a
    crossing somewhere upstream and downstream, so these bounds are tighter than one bound per
    piece."""
    options = problem.options
    lat = {(p, o.id): us_up(o.latency_ms) for p in problem.pieces for o in options[p]}
    inflows: dict[str, list] = {}
    outflows: dict[str, list] = {}
    for f in problem.flows:
        inflows.setdefault(f.target, []).append(f)
        outflows.setdefault(f.source, []).append(f)
    head: dict[tuple, int] = {}
    for p in problem.pieces:  # topological order
        for entry in {o.entry for o in options[p]}:
            arrive = 0
            for f in inflows.get(p, ()):
                if f.source == SOURCE:
                    arrive = max(arrive, us_up(problem.transfer_ms(f, SITE, entry)))
                    continue
                a = f.source
                arrive = max(arrive, min(
                    head[a, o.entry] + lat[a, o.id] + us_up(problem.transfer_ms(f, o.location, entry))
                    for o in options[a]))
            head[p, entry] = arrive
    tail: dict[tuple, int] = {}
    for p in reversed(problem.pieces):
        for loc in {o.location for o in options[p]}:
            leave = None
            for f in outflows.get(p, ()):
                if f.target == SINK:
                    t = us_up(problem.transfer_ms(f, loc, SITE))
                else:
                    b = f.target
                    downstream = [us_up(problem.transfer_ms(f, loc, o.entry)) + lat[b, o.id] + tail[b, o.location]
                                  for o in options[b] if (b, o.location) in tail]
                    if not downstream:
                        continue
                    t = min(downstream)
                leave = t if leave is None else max(leave, t)
            if leave is not None:
                tail[p, loc] = leave
    return head, tail


def cost_upper_bound(problem: Problem) -> int:
    """Micro-dollars no plan can exceed: the dearest option of every piece, every device, all
    traffic at every provider's dearest egress tier and the dearest inter-region rate."""
    ub = sum(usd(max((o.monthly_usd for o in opts), default=0.0)) for opts in problem.options.values())
    ub += sum(usd(d.monthly_usd) for d in problem.devices.values())
    ub += sum(usd(max((o.power_monthly_usd for o in opts), default=0.0)) for opts in problem.options.values())
    total_gb = sum(problem.egress_gb(f) for f in problem.flows)
    ub += sum(usd(max((price for _, price in tiers), default=0.0) * total_gb) + MICRO
              for tiers in problem.egress_tiers.values())
    # ...and all of it again at the dearest flat rate between two regions.
    ub += usd(max(problem.inter_region.values(), default=0.0) * total_gb) + MICRO
    return ub + MICRO
