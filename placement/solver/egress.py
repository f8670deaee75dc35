"""Tiered internet egress as CP-SAT terms: megabytes leaving each provider's cloud, filled
into its price tiers in order (free tier first, then falling prices)."""

from __future__ import annotations

import math

from ortools.sat.python import cp_model

from placement.problem import SINK, SOURCE, Problem, is_edge


def egress_terms(model: cp_model.CpModel, problem: Problem, at: dict, crossings: dict) -> list:
    """Micro-dollar terms of every provider's egress. `at[piece, location]` says where a piece
    runs; `crossings[flow index] = (consumer at the site, {cloud location: producer there})`."""
    providers = sorted(problem.egress_tiers)
    volume_terms: dict[str, list] = {p: [] for p in providers}
    for i, flow in enumerate(problem.flows):
        if flow.source == SOURCE:
            continue  # into the cloud: ingress is free
        mb = int(math.ceil(problem.egress_gb(flow) * 1000.0))
        if mb <= 0:
            continue
        for provider in providers:
            def in_cloud(loc: str, provider: str = provider) -> bool:
                return not is_edge(loc) and loc.split(":", 1)[0] == provider

            # An answer leaves `provider`'s cloud when the producer runs there and the consumer
            # runs at the site.
            if flow.target == SINK:
                lits = [lit for (p, loc), lit in at.items() if p == flow.source and in_cloud(loc)]
            else:
                edge_b, cloud_at = crossings[i]
                here = [lit for loc, lit in cloud_at.items() if in_cloud(loc) and not isinstance(lit, int)]
                if not here:
                    continue
                crosses = model.new_bool_var(f"egress[{flow.source}->{flow.target},{provider}]")
                model.add(crosses >= sum(here) + edge_b - 1)
                lits = [crosses]
            volume_terms[provider] += [(mb, lit) for lit in lits]

    terms = []
    for provider in providers:
        if not volume_terms[provider]:
            continue
        max_mb = sum(mb for mb, _ in volume_terms[provider])  # an upper bound; a flow counts once
        volume = model.new_int_var(0, max_mb, f"egress_mb[{provider}]")
        model.add(volume == sum(mb * lit for mb, lit in volume_terms[provider]))
        tiers = problem.egress_tiers[provider]
        fill = []
        prev_full = None
        for k, (width_gb, price) in enumerate(tiers):
            width_mb = max_mb if math.isinf(width_gb) else min(max_mb, int(round(width_gb * 1000)))
            amount = model.new_int_var(0, width_mb, f"egress_mb[{provider},tier{k}]")
            if prev_full is not None:
                # A tier only fills once the cheaper-numbered tier before it is full.
                model.add(amount == 0).only_enforce_if(~prev_full)
            full = model.new_bool_var(f"egress_full[{provider},tier{k}]")
            model.add(amount == width_mb).only_enforce_if(full)
            fill.append(amount)
            # price is USD per GB -> micro-dollars per MB
            terms.append(int(round(price * 1000)) * amount)
            prev_full = full
        model.add(volume == sum(fill))
    return terms
