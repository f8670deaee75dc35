"""What a plan runs, as stages (one piece on one worker group), worker groups (a site device:
one process shared by its pieces; a cloud pool: one process per replica sharing one queue) and
links (the dataflow, with the locations a message crosses between)."""

from __future__ import annotations

from dataclasses import dataclass, field

from placement.plan import Plan
from profiles.split import split_piece_names

SOURCE, SINK = "source", "sink"


@dataclass
class Stage:
    name: str            # the model, or <model>:head / <model>:tail
    piece: str           # the ONNX piece it runs (model, or <model>@<tensor>:head|tail)
    model: str
    placement: str       # the plan placement its predicted numbers come from
    group: str
    tier: str
    offer: str
    hardware: str
    runtime: str
    batch: int
    tvm_target: dict | None = None


@dataclass
class Group:
    name: str
    kind: str            # site | pool
    processes: int
    stages: list[str] = field(default_factory=list)


@dataclass
class Link:
    src: str             # a stage, or SOURCE
    dst: str             # a stage, or SINK
    loc_from: str
    loc_to: str
    declared_bytes: float
    planned_ms: float = 0.0  # the plan's transfer time for the declared bytes (0: no link)


@dataclass
class Topology:
    stages: dict[str, Stage]
    groups: dict[str, Group]
    links: list[Link]

    def links_from(self, src: str) -> list[Link]:
        return [link for link in self.links if link.src == src]

    def fan_in(self, dst: str) -> int:
        return sum(1 for link in self.links if link.dst == dst)

    def local_next(self, src: str) -> list[str]:
        """The stages `src` hands its output to inside its own worker, as the edge runner does on
        a device: same group, no link delay, one input, batch 1 on both ends."""
        stage = self.stages.get(src)
        if stage is None or stage.batch != 1:
            return []
        return [link.dst for link in self.links_from(src)
                if link.dst in self.stages and link.planned_ms == 0
                and self.stages[link.dst].group == stage.group and self.stages[link.dst].batch == 1
                and self.fan_in(link.dst) == 1]

    def paths(self) -> list[tuple[int, set[str]]]:
        """Every source -> sink path as (worker visits, the plan placements it runs): a visit is
        a stage the dispatcher hands a request to (a hand-over inside a worker is none)."""
        out: list[tuple[int, set[str]]] = []

        def walk(node: str, visits: int, placed: frozenset) -> None:
            for link in self.links_from(node):
                if link.dst == SINK:
                    out.append((visits, set(placed)))
                    continue
                inside = node in self.stages and link.dst in self.local_next(node)
                walk(link.dst, visits + (0 if inside else 1), placed | {self.stages[link.dst].placement})

        walk(SOURCE, 0, frozenset())
        return out

    def hops(self, critical_path=()) -> int:
        """Worker visits on the plan's critical path (the most over the paths that run only its
        pieces; over every path when none does)."""
        paths = self.paths()
        on = [v for v, placed in paths if placed <= set(critical_path)]
        return max(on or [v for v, _ in paths], default=0)

    @property
    def sinks(self) -> int:
        return self.fan_in(SINK)

    @property
    def has_site(self) -> bool:
        return any(g.kind == "site" for g in self.groups.values())


def plan_topology(plan: Plan) -> Topology:
    """The stages, groups and links of a feasible plan (one site; fleet segments are refused
    by the caller)."""
    stages: dict[str, Stage] = {}
    groups: dict[str, Group] = {}
    links: list[Link] = []
    entry: dict[str, str] = {}
    exit_: dict[str, str] = {}

    def group(name: str, kind: str, processes: int) -> str:
        groups.setdefault(name, Group(name, kind, processes))
        return name

    def add(stage: Stage) -> None:
        stages[stage.name] = stage
        groups[stage.group].stages.append(stage.name)

    for p in plan.placements:
        model = p.model or p.piece
        # co-located pieces: one pool, one process per replica running all of them
        pool = None if p.tier == "edge" else group(
            f"pool {p.offer} ({'+'.join(p.pool_pieces) or model})", "pool", p.replicas)
        if p.cut and p.head:
            head_piece, tail_piece = split_piece_names(model, p.cut)
            site = group(f"site {p.head.offer}", "site", 1)
            add(Stage(f"{model}:head", head_piece, model, p.piece, site, "edge", p.head.offer,
                      p.head.hardware, p.head.runtime, 1))
            add(Stage(f"{model}:tail", tail_piece, model, p.piece, pool, p.tier, p.offer, p.hardware,
                      p.runtime, p.batch, p.tvm_target))
            links.append(Link(f"{model}:head", f"{model}:tail", p.head.offer,
                              f"{p.provider}:{p.region}", p.cut_bytes, p.cut_transfer_ms))
            entry[p.piece], exit_[p.piece] = f"{model}:head", f"{model}:tail"
            continue
        where = group(f"site {p.offer}", "site", 1) if p.tier == "edge" else pool
        add(Stage(model, model, model, p.piece, where, p.tier, p.offer, p.hardware, p.runtime,
                  p.batch, p.tvm_target))
        entry[p.piece] = exit_[p.piece] = model
    for r in plan.routes:
        src = SOURCE if r.source == SOURCE else exit_[r.source]
        dst = SINK if r.target == SINK else entry[r.target]
        links.append(Link(src, dst, r.location_from, r.location_to, r.bytes_per_request, r.transfer_ms))
    return Topology(stages, groups, links)
