"""What a user moves in a what-if, applied to a spec and validated like it.

Kept apart from the Workspace so the app's state class and the CLI build the same `Overrides`
and a bad value is named by its spec field, whichever shell it came from.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from placement.spec import ApplicationSpec, CloudCandidate, parse_spec

Objective = Literal["cost", "latency"]


class Overrides(BaseModel):
    """What a user moves in a what-if; None leaves the spec's value. Maps and lists replace the
    spec's (`rtt_ms` and `discount_percent` are merged into it, a region at a time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slo_ms: Annotated[float, Field(gt=0)] | None = None
    percentile: Literal[50, 90, 95, 99] | None = None
    min_site_share: Annotated[float, Field(gt=0, le=1)] | None = None
    budget_usd: Annotated[float, Field(gt=0)] | None = None
    sites: Annotated[int, Field(gt=0)] | None = None
    rate_per_site_rps: Annotated[float, Field(gt=0)] | None = None
    uplink_mbps: Annotated[float, Field(gt=0)] | None = None
    downlink_mbps: Annotated[float, Field(gt=0)] | None = None
    rtt_ms: dict[str, Annotated[float, Field(ge=0)]] | None = None
    pricing_model: Literal["on-demand", "spot", "reserved-1y", "reserved-3y"] | None = None
    discount_percent: dict[str, Annotated[float, Field(ge=0, lt=100)]] | None = None
    edge_devices: list[str] | None = Field(default=None, description="the candidate edge devices")
    cloud: list[CloudCandidate] | None = Field(default=None, description="the candidate cloud offers")
    objective: Objective | None = None
    estimated_latency: Literal["nominal", "upper-band"] | None = None


def apply_overrides(spec: ApplicationSpec, overrides: Overrides | None) -> ApplicationSpec:
    """The spec as the overrides edit it, validated like a spec from a file (a bad value is a
    `SpecError` naming the spec field, e.g. `slo.latency_ms`)."""
    if overrides is None:
        return spec
    o = overrides
    data = spec.model_dump(mode="json", by_alias=True)
    edits = [(("slo", "latency_ms"), o.slo_ms), (("slo", "percentile"), o.percentile),
             (("slo", "min_site_share"), o.min_site_share), (("monthly_budget_usd",), o.budget_usd),
             (("load", "sites"), o.sites), (("load", "rate_per_site_rps"), o.rate_per_site_rps),
             (("network", "uplink_mbps"), o.uplink_mbps), (("network", "downlink_mbps"), o.downlink_mbps),
             (("hardware", "pricing_model"), o.pricing_model), (("hardware", "edge"), o.edge_devices),
             (("solver", "estimated_latency"), o.estimated_latency)]
    if o.cloud is not None:
        edits.append((("hardware", "cloud"), [c.model_dump(mode="json") for c in o.cloud]))
    if o.rtt_ms:
        edits.append((("network", "rtt_ms"), {**data["network"]["rtt_ms"], **o.rtt_ms}))
    if o.discount_percent is not None:
        edits.append((("hardware", "discount_percent"),
                      {**data["hardware"]["discount_percent"], **o.discount_percent}))
    changed = False
    for path, value in edits:
        if value is None:
            continue
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        changed = True
    if not changed:
        return spec
    return parse_spec(data, origin="overrides")
