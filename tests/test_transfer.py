"""Transfer billed on every link that leaves a cloud region, at the sender's published rates:
to the sites and to another provider (internet tiers), to another region of the same provider
(flat inter-region rate). Hand computations from the embedded snapshot (pricing/data/egress.json)."""

from __future__ import annotations

import pandas as pd
import pytest
from factories import offer_row, profile_row
from test_solver import brute_force

from placement.evaluate import evaluate, resolve_assignment
from placement.problem import SECONDS_PER_MONTH, build_problem
from placement.solver import solve
from placement.spec import parse_spec
from pricing import egress
from pricing import table as ot
from profiles import table as pt

SITES, RATE = 400, 12.5  # 5,000 requests/s
REQUESTS = SITES * RATE * SECONDS_PER_MONTH
EMB_GB = 384 * REQUESTS / 1e9  # the embedding, 384 B a request: ~5 TB a month
ANS_GB = 16 * REQUESTS / 1e9  # the answer back to the sites


def spec(clouds: dict, colocate: bool = True) -> dict:
    regions = [r for rs in clouds.values() for r in rs]
    return {
        "name": "fan",
        "models": [{"name": "emb", "onnx": "zoo:resnet18"}, {"name": "head", "onnx": "zoo:resnet18"}],
        "dataflow": [{"from": "source", "to": "emb"}, {"from": "emb", "to": "head"},
                     {"from": "head", "to": "sink"}],
        "load": {"sites": SITES, "rate_per_site_rps": RATE},
        "slo": {"latency_ms": 500.0, "percentile": 95},
        "monthly_budget_usd": 1e6,
        "hardware": {"edge": [], "cloud": [{"provider": p, "regions": rs} for p, rs in clouds.items()]},
        "network": {"uplink_mbps": 50.0, "downlink_mbps": 100.0, "rtt_ms": {r: 20.0 for r in regions}},
        "solver": {"max_extra_replicas": 0, "colocate": colocate},
    }


def tables(locations: list[tuple[str, str, float]], emb_on: tuple = ("aws", "azure")):
    """One instance type per location, its hardware class named after the provider; the
    embedding model runs only on `emb_on` providers' hardware."""
    offers = pd.DataFrame([
        offer_row(ot.cloud_offer_id(p, r, "c1"), "cloud", "c1", f"hw-{p}", provider=p, region=r, hourly=hourly)
        for p, r, hourly in locations], columns=ot.OFFER_COLUMNS)
    profiles = pd.DataFrame([profile_row(m, f"hw-{p}", 0.05, 0.06) for m in ("emb", "head")
                             for p in ("aws", "azure") if m == "head" or p in emb_on],
                            columns=pt.PROFILE_COLUMNS)
    return offers, profiles, {"emb": (1_000, 384), "head": (384, 16)}


def problem_of(clouds, locations, emb_on=("aws", "azure"), colocate=True):
    offers, profiles, io = tables(locations, emb_on)
    return build_problem(parse_spec(spec(clouds, colocate), origin="test"), profiles, offers, io)


def items_of(ev):
    return {i.item: i for i in ev.cost_items if i.kind == "egress"}


def aws_internet(gb):
    return (gb - 100) * 0.09  # free 100 GB, then 0.09 $/GB up to 10 TB (AWS list price)


def test_published_rates_in_the_snapshot():
    assert egress.inter_region_usd_per_gb("aws", "us-east-1", "us-east-2") == 0.01
    assert egress.inter_region_usd_per_gb("aws", "us-east-1", "us-west-2") == 0.02
    assert egress.inter_region_usd_per_gb("aws", "us-west-2", "eu-west-1") == 0.02
    assert egress.inter_region_usd_per_gb("azure", "eastus", "westus2") == 0.02
    assert egress.inter_region_usd_per_gb("azure", "eastus", "westeurope") is None  # no rate: internet
    assert egress.inter_region_usd_per_gb("aws", "us-east-1", "us-east-1") == 0.0
    assert "aws.amazon.com/ec2/pricing" in egress.inter_region_source("aws")
    assert "azure.microsoft.com/en-us/pricing/details/bandwidth" in egress.inter_region_source("azure")


def test_provider_to_provider_link_is_billed_at_the_senders_internet_tiers():
    pb = problem_of({"aws": ["us-east-1"], "azure": ["eastus"]},
                    [("aws", "us-east-1", 0.1), ("azure", "eastus", 0.1)])
    ev = evaluate(pb, resolve_assignment(pb, {"emb": "aws:us-east-1:c1", "head": "azure:eastus:c1"}))
    items = items_of(ev)
    link = items["aws internet egress us-east-1 -> azure:eastus"]
    assert link.quantity == pytest.approx(EMB_GB)
    assert pytest.approx(5045.76) == EMB_GB
    assert link.monthly_usd == pytest.approx(aws_internet(EMB_GB))  # ~ $445
    # the answers leave Azure for the sites at Azure's tiers
    assert items["azure internet egress"].monthly_usd == pytest.approx((ANS_GB - 100) * 0.087)
    assert "ec2" in link.source.lower() or "aws" in link.source.lower()
    # same place: no link at all; the answers leave AWS alone
    same = evaluate(pb, resolve_assignment(pb, {"emb": "aws:us-east-1:c1", "head": "aws:us-east-1:c1"}))
    assert list(items_of(same)) == ["aws internet egress"]
    assert items_of(same)["aws internet egress"].monthly_usd == pytest.approx(aws_internet(ANS_GB))


@pytest.mark.parametrize("to_region, rate", [("us-west-2", 0.02), ("us-east-2", 0.01)])
def test_region_to_region_link_is_billed_at_the_published_flat_rate(to_region, rate):
    pb = problem_of({"aws": ["us-east-1", to_region]},
                    [("aws", "us-east-1", 0.1), ("aws", to_region, 0.1)])
    ev = evaluate(pb, resolve_assignment(pb, {"emb": "aws:us-east-1:c1", "head": f"aws:{to_region}:c1"}))
    items = items_of(ev)
    link = items[f"aws inter-region us-east-1 -> {to_region}"]
    assert link.quantity == pytest.approx(EMB_GB)
    assert link.unit_usd == rate and link.monthly_usd == pytest.approx(rate * EMB_GB)
    assert "inter" in link.source.lower() or "region" in link.source.lower()
    assert items["aws internet egress"].monthly_usd == pytest.approx(aws_internet(ANS_GB))


def test_a_region_pair_with_no_published_rate_is_billed_at_internet_tiers():
    pb = problem_of({"azure": ["eastus", "westeurope"]},
                    [("azure", "eastus", 0.1), ("azure", "westeurope", 0.1)])
    ev = evaluate(pb, resolve_assignment(pb, {"emb": "azure:eastus:c1", "head": "azure:westeurope:c1"}))
    items = items_of(ev)
    # one internet volume for Azure (the link and the answers), priced on its tiers as a whole
    total = EMB_GB + ANS_GB
    whole = (total - 100) * 0.087
    link = items["azure internet egress eastus -> azure:westeurope"]
    assert link.monthly_usd == pytest.approx(whole * EMB_GB / total)
    assert items["azure internet egress"].monthly_usd == pytest.approx(whole * ANS_GB / total)
    assert sum(i.monthly_usd for i in items.values()) == pytest.approx(whole)


def test_the_solver_no_longer_splits_across_providers_for_a_free_link():
    # The embedding runs on AWS only; Azure is cheaper per hour for the head, by less than the
    # AWS -> Azure link costs: the all-AWS plan wins, and the solver, the brute force and the
    # checker agree on it. A pool per model (solver.colocate off): this is about the link's bill;
    # with co-location both models share one AWS replica and the all-AWS plan wins by more
    # (tests/test_colocate.py).
    pb = problem_of({"aws": ["us-east-1"], "azure": ["eastus"]},
                    [("aws", "us-east-1", 0.30), ("azure", "eastus", 0.10)], emb_on=("aws",), colocate=False)
    result = solve(pb)
    ev = evaluate(pb, result.assignment)
    assert {o.location for o in ev.assignment.values()} == {"aws:us-east-1"}
    assert result.objective_value == pytest.approx(ev.monthly_usd, abs=0.05)
    assert brute_force(pb)[0] == pytest.approx(ev.monthly_usd, abs=0.05)
    split = evaluate(pb, resolve_assignment(pb, {"emb": "aws:us-east-1:c1", "head": "azure:eastus:c1"}))
    assert split.monthly_usd > ev.monthly_usd
    # without the link's bill the split plan would have been cheaper
    link = items_of(split)["aws internet egress us-east-1 -> azure:eastus"].monthly_usd
    assert split.monthly_usd - link < ev.monthly_usd


def test_the_solver_prices_inter_region_links_as_the_checker_does():
    # 0.20 $/h x 730 h = $146 of cheaper compute in us-east-2 against a 0.01 $/GB link ($50)
    pb = problem_of({"aws": ["us-east-1", "us-east-2"]},
                    [("aws", "us-east-1", 0.30), ("aws", "us-east-2", 0.10)])
    result = solve(pb)
    ev = evaluate(pb, result.assignment)
    assert result.objective_value == pytest.approx(ev.monthly_usd, abs=0.05)
    assert brute_force(pb)[0] == pytest.approx(ev.monthly_usd, abs=0.05)
