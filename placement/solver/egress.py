"""Transfer that leaves a cloud region as CP-SAT terms: megabytes leaving each provider's cloud
over the internet (to the sites, to another provider, to one of its regions with no published
rate), filled into its price tiers in order (free tier first, then falling prices); and bytes
between two regions of one provider at their flat published rate."""

from __future__ import annotations

import math

from ortools.sat.python import cp_model

from placement.problem import SINK, SITE, SOURCE, Problem, is_edge


def egress_terms(model: cp_model.CpModel, problem: Problem, at: dict, at_in: dict) -> list:
    """Micro-dollars of every billed transfer. `at[piece, location]` says where a piece's output
    leaves from, `at_in[piece, location]` where its input arrives."""
    providers = sorted(problem.egress_tiers)
    volume_terms: dict[str, list] = {p: [] for p in providers}
    terms: list = []
    receivers: dict[str, list[str]] = {}
    for (p, loc) in at_in:
        receivers.setdefault(p, []).append(loc)
    senders: dict[str, list[str]] = {}
    for (p, loc) in at:
        senders.setdefault(p, []).append(loc)
    for flow in problem.flows:
        if flow.source == SOURCE:
            continue  # into the cloud: ingress is free
        mb = int(math.ceil(problem.egress_gb(flow) * 1000.0))
        if mb <= 0:
            continue
        a, b = flow.source, flow.target
        by_internet: dict[str, list] = {}  # provider -> [(a's location, [b's locations])]
        for la in senders[a]:
            if is_edge(la):
                continue
            lbs = [SITE] if b == SINK else receivers[b]
            internet, flat = [], {}
            for lb in lbs:
                charge = problem.billed_link(la, lb)
                if charge is None:
                    continue
                provider, rate = charge
                if rate is None:
                    internet.append(lb)
                else:
                    flat.setdefault(rate, []).append(lb)
            provider = la.split(":", 1)[0]
            if provider not in volume_terms:
                continue  # no tiers given for this provider: its transfer is not priced
            if b == SINK:
                if internet:  # the answer leaves for the site whenever a runs here
                    volume_terms[provider].append((mb, at[a, la]))
                continue
            if internet:
                by_internet.setdefault(provider, []).append((la, internet))
            for rate, lbs_rate in sorted(flat.items()):
                # a runs here and b in another region of the provider: a flat rate per GB.
                x = model.new_bool_var(f"link[{a}->{b},{la},{rate:g}]")
                model.add(x >= at[a, la] + sum(at_in[b, lb] for lb in lbs_rate) - 1)
                terms.append(int(round(rate * 1000)) * mb * x)
        for provider, pairs in by_internet.items():
            # The data leaves `provider`'s cloud over the internet when a runs in it and b
            # runs somewhere its bytes are billed at the internet tiers.
            crosses = model.new_bool_var(f"egress[{a}->{b},{provider}]")
            for la, lbs in pairs:
                model.add(crosses >= at[a, la] + sum(at_in[b, lb] for lb in lbs) - 1)
            volume_terms[provider].append((mb, crosses))

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
