"""An independent MILP of the placement problem in HiGHS, for cross-checking CP-SAT's optimum.

Deliberately formulated differently from `placement.solver`: continuous floats instead of
integer micro-units, and crossing times through a transportation polytope of location pairs
instead of CP-SAT's max-of-linear-terms, a pool variable per shared cloud pool (fleet segments
or co-located pieces) instead of literal equalities, and big-M per-segment deadlines for an SLO on a share of sites, so a shared
mistake is unlikely.
"""

from __future__ import annotations

import math

import highspy

from placement.problem import SINK, SITE, SOURCE, Problem, is_edge


def milp_min_cost(problem: Problem, time_limit_s: float = 60.0) -> float | None:
    h = highspy.Highs()
    h.silent()
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", 1e-9)
    pieces = problem.pieces
    on = {(p, o.id): h.addBinary() for p in pieces for o in problem.options[p]}
    locs = {p: sorted({o.location for o in problem.options[p]}) for p in pieces}
    ins = {p: sorted({o.entry for o in problem.options[p]}) for p in pieces}

    def at(p, loc):
        return sum(on[p, o.id] for o in problem.options[p] if o.location == loc)

    def at_in(p, loc):
        return sum(on[p, o.id] for o in problem.options[p] if o.entry == loc)

    for p in pieces:
        h.addConstr(sum(on[p, o.id] for o in problem.options[p]) == 1)
    lat = {p: sum(o.latency_ms * on[p, o.id] for o in problem.options[p]) for p in pieces}
    start = {p: h.addVariable(lb=0.0, ub=1e9) for p in pieces}
    end = h.addVariable(lb=0.0, ub=problem.slo_ms)
    coverage = problem.fleet and problem.min_site_share < 1.0
    big_m = 1e6
    if coverage:
        # each segment's answers arrive at its own deadline; those that meet the SLO cover the share
        lane_end = {lane.segment: h.addVariable(lb=0.0, ub=1e9) for lane in problem.lanes}
        meets = {lane.segment: h.addBinary() for lane in problem.lanes}
        for seg in lane_end:
            h.addConstr(end >= lane_end[seg] - big_m * (1 - meets[seg]))
        h.addConstr(sum(lane.share * meets[lane.segment] for lane in problem.lanes)
                    >= problem.min_site_share - 1e-9)
    crossing_gb: dict[str, list] = {}
    flat_terms: list = []
    for flow in problem.flows:
        a, b = flow.source, flow.target
        if a == SOURCE and b == SINK:
            continue
        if a == SOURCE:
            h.addConstr(start[b] >= sum(problem.transfer_ms(flow, SITE, loc) * at_in(b, loc) for loc in ins[b]))
            continue
        if b == SINK:
            deadline = lane_end[problem.piece_lane[a]] if coverage else end
            h.addConstr(deadline >= start[a] + lat[a] + sum(problem.transfer_ms(flow, loc, SITE) * at(a, loc) for loc in locs[a]))
            for loc in locs[a]:
                if not is_edge(loc):
                    crossing_gb.setdefault(loc.split(":")[0], []).append(problem.egress_gb(flow) * at(a, loc))
            continue
        z = {(la, lb): h.addVariable(lb=0.0, ub=1.0) for la in locs[a] for lb in ins[b]}
        for la in locs[a]:
            h.addConstr(sum(z[la, lb] for lb in ins[b]) == at(a, la))
        for lb in ins[b]:
            h.addConstr(sum(z[la, lb] for la in locs[a]) == at_in(b, lb))
        h.addConstr(start[b] >= start[a] + lat[a] + sum(problem.transfer_ms(flow, la, lb) * v for (la, lb), v in z.items()))
        for (la, lb), v in z.items():
            # bytes leaving a cloud region: the sender's internet tiers, or a flat inter-region rate
            charge = problem.billed_link(la, lb)
            if charge is None:
                continue
            provider, rate = charge
            if rate is None:
                crossing_gb.setdefault(provider, []).append(problem.egress_gb(flow) * v)
            else:
                flat_terms.append(rate * problem.egress_gb(flow) * v)

    cost_terms = [o.monthly_usd * on[p, o.id] for p in pieces for o in problem.options[p]
                  if o.tier == "cloud" and o.pool is None]
    pools: dict[str, tuple] = {}
    for p in pieces:
        for o in problem.options[p]:
            if o.pool is not None:
                if o.pool not in pools:
                    pools[o.pool] = (h.addBinary(), o.monthly_usd)
                h.addConstr(on[p, o.id] == pools[o.pool][0])
    # a pool (fleet segments' copies of a model, or co-located pieces) one of whose pieces has no
    # option in it is never used
    in_pool = {(p, o.pool) for p in pieces for o in problem.options[p]}
    for p in pieces:
        for o in problem.options[p]:
            if o.pool is not None and any((m, o.pool) not in in_pool for m in o.pool_members):
                h.addConstr(on[p, o.id] == 0)
    cost_terms += [monthly * y for y, monthly in pools.values()]
    cost_terms += flat_terms
    for d, dev in problem.devices.items():
        users = [(p, o) for p in pieces for o in problem.options[p] if o.device_offer == d]
        if not users:
            continue
        used = h.addBinary()
        for p, o in users:
            h.addConstr(used >= on[p, o.id])
        h.addConstr(sum(o.device_utilisation * on[p, o.id] for p, o in users) <= problem.utilisation_cap)
        h.addConstr(sum(o.device_memory_mb * on[p, o.id] for p, o in users) <= dev.memory_mb)
        cost_terms.append(dev.monthly_usd_per_site * dev.sites * used)
        cost_terms += [o.power_monthly_usd * on[p, o.id] for p, o in users if o.power_monthly_usd]
    for provider, terms in crossing_gb.items():
        total_gb = sum(problem.egress_gb(f) for f in problem.flows)
        volume = sum(terms)
        amounts, prev_full = [], None
        for width, price in problem.egress_tiers[provider]:
            w = total_gb if math.isinf(width) else min(width, total_gb)
            t = h.addVariable(lb=0.0, ub=w)
            if prev_full is not None:
                h.addConstr(t <= w * prev_full)
            full = h.addBinary()
            h.addConstr(t >= w * full)
            amounts.append(t)
            cost_terms.append(price * t)
            prev_full = full
        h.addConstr(sum(amounts) == volume)
    cost = sum(cost_terms)
    h.addConstr(cost <= problem.budget_usd)
    h.minimize(cost)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return h.getInfo().objective_function_value
