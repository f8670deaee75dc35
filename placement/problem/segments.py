"""Fleet segments: shares of the sites with their own installed device (`Lane`)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from placement.spec import ApplicationSpec


@dataclass(frozen=True)
class Lane:
    """A fleet segment: its sites run their own copy of the dataflow, with pieces named
    `<segment>/<model>`. A uniform fleet is one unnamed lane of all sites."""

    segment: str
    share: float
    sites: int
    device: str | None  # the edge offer installed there; None: any of hardware.edge

    def device_key(self, offer: str) -> str:
        """The key of `offer`'s devices at these sites in `Problem.devices` (and their location):
        two segments with the same device model still own two sets of devices."""
        return f"{offer}@{self.segment}" if self.segment else offer


def fleet_lanes(spec: ApplicationSpec) -> list[Lane]:
    if not spec.fleet:
        return [Lane("", 1.0, spec.load.sites, None)]
    return [Lane(seg.name, seg.share, int(round(seg.share * spec.load.sites)), f"edge:{seg.device}")
            for seg in spec.fleet]


def segment_subsets(lanes):
    """Every non-empty set of segments, in a fixed order (lanes keep their spec order)."""
    for k in range(1, len(lanes) + 1):
        yield from combinations(lanes, k)
