"""The placement `Problem`: pieces, flows, options and devices, immutable once built."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType

from placement.problem.network import Flow, billed_link, transfer_ms
from placement.problem.records import Option
from placement.problem.segments import Lane
from profiles.errors import UserError

_MAPPINGS = ("options", "devices", "egress_tiers", "egress_source", "unplaceable", "piece_lane",
             "piece_model", "inter_region", "inter_region_source", "served_runtimes")


class ProblemError(UserError):
    """Inputs that cannot form a placement problem (e.g. a piece with no usable option)."""


@dataclass(frozen=True)
class Problem:
    name: str
    pieces: tuple[str, ...]  # topological order
    flows: tuple[Flow, ...]
    options: dict  # piece -> tuple[Option, ...]
    devices: dict  # device key (edge location) -> EdgeDevice (placement.problem.offers)
    sites: int
    requests_per_month: float
    slo_ms: float
    slo_percentile: int
    budget_usd: float
    utilisation_cap: float
    pricing_model: str
    network: object  # NetworkSpec
    egress_tiers: dict  # provider -> tuple[(width_gb, usd_per_gb), ...]
    egress_source: dict  # provider -> str
    price_date: str
    spec_digest: str
    unplaceable: dict = field(default_factory=dict)  # piece -> why it has no options
    notes: tuple[str, ...] = ()
    max_price_age_days: int = 30
    lanes: tuple[Lane, ...] = ()
    piece_lane: dict = field(default_factory=dict)  # piece -> segment ("" in a uniform fleet)
    piece_model: dict = field(default_factory=dict)  # piece -> model name
    min_site_share: float = 1.0  # the SLO must hold on at least this share of sites
    arrival_scv: float = 1.0  # ca² of one site's inter-arrival gaps (docs/queueing.md)
    # (from location, to location) -> USD per GB between two regions of one provider, where
    # published; a pair not here is billed at the sender's internet tiers. provider -> source.
    inter_region: dict = field(default_factory=dict)
    inter_region_source: dict = field(default_factory=dict)
    # (piece, hardware) -> runtimes of rows measured while serving (`placement verify
    # --store-profiles`): a plan that picks another runtime there says its row was measured alone
    served_runtimes: dict = field(default_factory=dict)

    def __post_init__(self):
        # Read-only views: a problem is shared by the solver, the checker and every re-solve;
        # a variant is a new problem (`dataclasses.replace`).
        for name in _MAPPINGS:
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "options", MappingProxyType(
            {p: tuple(opts) for p, opts in self.options.items()}))

    def __reduce__(self):  # picklable (read-only views are not): rebuilt from plain dicts
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _MAPPINGS:
            values[name] = dict(values[name])
        return (_rebuild, (values,))

    @property
    def fleet(self) -> bool:
        """True when pieces are per fleet segment (`<segment>/<model>`)."""
        return any(lane.segment for lane in self.lanes)

    @property
    def num_options(self) -> int:
        return sum(len(opts) for opts in self.options.values())

    def lane_share(self, segment: str) -> float:
        return next(lane.share for lane in self.lanes if lane.segment == segment)

    def option(self, option_id: str) -> Option:
        for opts in self.options.values():
            for opt in opts:
                if opt.id == option_id:
                    return opt
        raise KeyError(option_id)

    def locations(self) -> list[str]:
        locs = {o.location for opts in self.options.values() for o in opts}
        return sorted(locs)

    def transfer_ms(self, flow: Flow, loc_from: str, loc_to: str) -> float:
        return transfer_ms(self.network, loc_from, loc_to, flow.bytes_per_request)

    def billed_link(self, loc_from: str, loc_to: str) -> tuple[str, float | None] | None:
        """(sending provider, flat USD/GB or None for its internet tiers), None when free."""
        return billed_link(loc_from, loc_to, self.inter_region)

    def egress_gb(self, flow: Flow) -> float:
        return flow.bytes_per_request * flow.share * self.requests_per_month / 1e9


def _rebuild(values: dict) -> Problem:
    return Problem(**values)
