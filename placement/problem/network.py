"""Where data flows and how long it takes to cross: locations, links and bytes per request."""

from __future__ import annotations

from dataclasses import dataclass

from placement.spec import SINK, ApplicationSpec

SITE = "site"  # where requests start and answers return


@dataclass(frozen=True)
class Flow:
    """A dataflow edge and the bytes it carries per request."""

    source: str
    target: str
    bytes_per_request: float
    share: float = 1.0  # share of all requests that take this edge (its fleet segment's share)


def is_edge(location: str) -> bool:
    return location == SITE or location.startswith("edge:")


def transfer_ms(network, loc_from: str, loc_to: str, nbytes: float) -> float:
    """Time for `nbytes` to cross from one location to another: serialisation + one-way delay."""
    if loc_from == loc_to and is_edge(loc_from):
        return 0.0
    if is_edge(loc_from) and is_edge(loc_to):
        if SITE in (loc_from, loc_to):  # the site's own sensor/app and a device at the site
            return 0.0
        return _link_ms(nbytes, network.lan_mbps, network.lan_rtt_ms)
    if is_edge(loc_from):  # site -> cloud
        region = loc_to.split(":", 1)[1]
        return _link_ms(nbytes, network.uplink_mbps, network.rtt_ms[region])
    if is_edge(loc_to):  # cloud -> site
        region = loc_from.split(":", 1)[1]
        return _link_ms(nbytes, network.downlink_mbps, network.rtt_ms[region])
    if loc_from == loc_to:
        return _link_ms(nbytes, network.intra_region_mbps, network.intra_region_rtt_ms)
    return _link_ms(nbytes, network.inter_region_mbps, network.inter_region_rtt_ms)


def provider_of(location: str) -> str | None:
    """The cloud provider of a location (`provider:region`), None at the edge."""
    return None if is_edge(location) else location.split(":", 1)[0]


def billed_link(loc_from: str, loc_to: str, inter_region) -> tuple[str, float | None] | None:
    """Who pays for bytes that cross from one location to another, and how: None when free
    (from the edge - ingress is free -, or within one cloud region); (provider, rate) for a
    link between two regions of one provider with a published flat rate per GB
    (`inter_region[loc_from, loc_to]`); (provider, None) for bytes billed at the sending
    provider's internet egress tiers: to the sites, to another provider, or to another of its
    regions with no published rate (an upper bound)."""
    provider = provider_of(loc_from)
    if provider is None or loc_from == loc_to:
        return None
    if provider_of(loc_to) == provider:
        return provider, inter_region.get((loc_from, loc_to))
    return provider, None


def _link_ms(nbytes: float, mbps: float, rtt_ms: float) -> float:
    return nbytes * 8.0 / (mbps * 1000.0) + rtt_ms / 2.0


def flows_with_bytes(spec: ApplicationSpec, io_bytes: dict) -> tuple[Flow, ...]:
    """Bytes per request on each dataflow edge: what the target consumes, or what reaches the sink.

    `io_bytes[model] = (input_bytes, output_bytes)` for one call; a model called k times per
    request consumes k inputs and produces k outputs.
    """
    flows = []
    for edge in spec.dataflow:
        if edge.bytes is not None:
            nbytes = float(edge.bytes)
        elif edge.target != SINK:
            nbytes = io_bytes[edge.target][0] * spec.model(edge.target).calls_per_request
        else:
            nbytes = io_bytes[edge.source][1] * spec.model(edge.source).calls_per_request
        flows.append(Flow(edge.source, edge.target, nbytes))
    return tuple(flows)
