"""The application spec: what the user tells us about their models, load, SLO, money and hardware.

Everything a user can get wrong is caught here and reported as one line naming the field
(`SpecError`), because a planner fed a wrong rate or a missing model silently buys the
wrong hardware.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from profiles.errors import UserError

SOURCE = "source"
SINK = "sink"
ENDPOINTS = (SOURCE, SINK)

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
PricingModel = Literal["on-demand", "spot", "reserved-1y", "reserved-3y"]


class SpecError(UserError):
    """A spec the tool cannot use; `str()` is the one line the user sees."""

    def __init__(self, field: str, message: str, origin: str | None = None):
        self.field = field
        self.message = message
        self.origin = origin
        prefix = f"{origin}: " if origin else ""
        super().__init__(f"{prefix}{field}: {message}")


# Numbers a spec can mean: anything smaller (but not zero) or larger is a typo that would
# overflow the model's arithmetic (a 1e-320 Mbit/s link, 1e23 sites).
SMALLEST, LARGEST = 1e-9, 1e12


def _plausible(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if abs(value) > LARGEST or (value != 0 and abs(value) < SMALLEST):
            raise ValueError(f"must be 0 or between {SMALLEST:g} and {LARGEST:g} in size, got {value!r}")
    elif isinstance(value, dict):
        for item in value.values():
            _plausible(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _plausible(item)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _plausible_numbers(cls, value):
        return _plausible(value)


class ModelSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    onnx: str = Field(min_length=1, description="path to an .onnx file (relative to the spec) or zoo:<name>")
    inputs: dict[str, list[PositiveInt]] | None = Field(
        default=None, description="input name -> fixed shape; optional for zoo models"
    )
    input_values: dict[str, float | int | list] | None = Field(
        default=None, description="input name -> the values to run it with (a number or nested "
        "lists), for inputs whose values matter (sizes, sample rates, token ids); its shape is "
        "taken from the values")
    sample_inputs: str | None = Field(
        default=None, description="a .npz file (relative to the spec) of input values by input "
        "name, used like input_values; shapes are taken from its arrays")
    calls_per_request: PositiveFloat = 1.0
    split: Literal["auto", "none"] | list[str] = Field(
        default="none",
        description="cut the model in two (head at the site, tail in the cloud): 'auto' keeps a "
        "handful of cuts where the crossing tensor is small, or name the cut tensors",
    )

    @field_validator("name")
    @classmethod
    def _not_endpoint(cls, name: str) -> str:
        if name in ENDPOINTS:
            raise ValueError(f"'{name}' is reserved for the dataflow endpoints")
        return name


class EdgeSpec(_Strict):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    bytes: PositiveInt | None = Field(
        default=None,
        description="bytes crossing this edge per request; default: what the target consumes "
        "(its inputs) or, into the sink, what the source model produces",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LoadSpec(_Strict):
    sites: PositiveInt
    rate_per_site_rps: PositiveFloat
    arrival: Literal["poisson", "periodic"] = Field(
        default="poisson",
        description="how one site's requests arrive: poisson (independent, random gaps) or "
        "periodic (on a clock, e.g. a camera's frames); the queueing wait depends on it")
    burstiness: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="squared coefficient of variation of the gaps between one site's requests, "
        "overriding `arrival` (0 periodic, 1 Poisson, above 1 bursty); docs/queueing.md")


class SloSpec(_Strict):
    latency_ms: PositiveFloat
    percentile: Literal[50, 90, 95, 99] = 95
    min_site_share: Annotated[float, Field(gt=0, le=1)] = Field(
        default=1.0,
        description="meet the SLO on at least this share of sites (fleet segments): 0.85 = 85%",
    )


class FleetSegment(_Strict):
    """Sites that share one edge device model: each segment may place the pieces differently."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    share: Annotated[float, Field(gt=0, le=1)] = Field(description="share of the sites in this segment")
    device: str = Field(min_length=1, description="edge device id installed at these sites")
    owned: bool = Field(
        default=False,
        description="true: the devices are already installed; only their power is charged",
    )
    owned_by: Literal["operator", "users"] = Field(
        default="operator",
        description="users: the devices are the users' own (a phone population): neither their "
        "price nor their power is charged (implies owned); the share is a share of the users",
    )

    @model_validator(mode="before")
    @classmethod
    def _users_own_theirs(cls, data):
        """`owned_by: users` implies `owned` (an explicit `owned: false` contradicts it)."""
        if isinstance(data, dict) and data.get("owned_by") == "users":
            if data.get("owned") is False:
                raise ValueError("owned_by: users means the devices are owned; drop owned: false")
            data = {**data, "owned": True}
        return data


class CloudCandidate(_Strict):
    provider: Literal["aws", "azure"]
    regions: list[str] = Field(min_length=1)
    instance_types: list[str] | None = Field(
        default=None, description="only these instance types; default: all in the catalog"
    )
    gpu: bool | None = Field(default=None, description="true: only GPU offers; false: none")
    max_hourly_usd: PositiveFloat | None = None


class HardwareSpec(_Strict):
    edge: list[str] = Field(default_factory=list, description="edge device ids")
    cloud: list[CloudCandidate] = Field(default_factory=list)
    pricing_model: PricingModel = "on-demand"
    discount_percent: dict[Literal["aws", "azure"], Annotated[float, Field(ge=0, lt=100)]] = Field(
        default_factory=dict, description="negotiated discount per provider, on every cloud price"
    )
    max_price_age_days: PositiveInt = Field(
        default=30, description="plans warn when the prices they used are older than this"
    )
    price_overrides: str | None = Field(
        default=None, description="CSV (relative to the spec) of negotiated prices: offer + price columns"
    )


class NetworkSpec(_Strict):
    uplink_mbps: PositiveFloat = Field(description="site -> cloud bandwidth per site")
    downlink_mbps: PositiveFloat = Field(description="cloud -> site bandwidth per site")
    rtt_ms: dict[str, Annotated[float, Field(ge=0)]] = Field(
        description="round-trip time from a site to each cloud region"
    )
    lan_mbps: PositiveFloat = Field(default=1000.0, description="between devices at one site")
    lan_rtt_ms: Annotated[float, Field(ge=0)] = 0.4
    intra_region_mbps: PositiveFloat = Field(default=10000.0, description="between pools in one region")
    intra_region_rtt_ms: Annotated[float, Field(ge=0)] = 0.5
    inter_region_mbps: PositiveFloat = Field(default=1000.0)
    inter_region_rtt_ms: Annotated[float, Field(ge=0)] = 70.0


class EdgeCostSpec(_Strict):
    amortisation_months: PositiveInt = 36
    electricity_usd_per_kwh: Annotated[float, Field(ge=0)] = 0.15
    power: Literal["by-use", "full-load"] = Field(
        default="by-use",
        description="by-use: a device draws its idle power plus (busy - idle) x its utilisation "
        "(devices without a published idle figure are charged busy); full-load: the busy figure "
        "around the clock (conservative)")


class SolverSpec(_Strict):
    utilisation_cap: Annotated[float, Field(gt=0, le=1)] = 0.7
    estimated_latency: Literal["nominal", "upper-band"] = Field(
        default="nominal",
        description="plan estimated latencies at their value, or at the top of their error band "
        "(a plan that still holds if every estimate is as far off as its calibration allows)",
    )
    max_extra_replicas: Annotated[int, Field(ge=0, le=16)] = 3
    colocate: bool = Field(
        default=True,
        description="let several whole models share one cloud pool of an instance type in a region "
        "(their loads, memory and queue add up) where that is cheaper; false: a pool per model. "
        "Not in a mixed fleet (spec fleet), nor for a split model's tail",
    )
    colocate_max_pieces: Annotated[int, Field(ge=2, le=8)] = Field(
        default=4, description="the most models one co-located pool runs (the options grow with "
        "the number of subsets of this size)")
    colocate_max_pools: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=400, description="the most co-located pools offered to the solver, those that save "
        "the most money against their models apart first (each adds an option per model in it)")
    time_limit_s: PositiveFloat = 30.0
    seed: Annotated[int, Field(ge=0)] = 0
    workers: PositiveInt = 2


class ApplicationSpec(_Strict):
    name: str = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    dataflow: list[EdgeSpec] = Field(min_length=1)
    load: LoadSpec
    slo: SloSpec
    monthly_budget_usd: PositiveFloat
    hardware: HardwareSpec
    network: NetworkSpec
    edge: EdgeCostSpec = Field(default_factory=EdgeCostSpec)
    fleet: list[FleetSegment] | None = Field(
        default=None, min_length=1, max_length=6,
        description="a mixed edge fleet: segments of the sites, each with its own device; the "
        "edge candidates of a segment are its device (leave hardware.edge empty)",
    )
    solver: SolverSpec = Field(default_factory=SolverSpec)

    @model_validator(mode="after")
    def _dataflow_is_a_dag(self) -> ApplicationSpec:
        names = [m.name for m in self.models]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise _FieldError(f"models[{i}].name", f"model name {name!r} appears twice")
            seen.add(name)
        nodes = set(names) | set(ENDPOINTS)
        succ: dict[str, list[str]] = {n: [] for n in nodes}
        for i, edge in enumerate(self.dataflow):
            for end, value in (("from", edge.source), ("to", edge.target)):
                if value not in nodes:
                    raise _FieldError(
                        f"dataflow[{i}].{end}",
                        f"{value!r} is neither a model nor source/sink (dangling edge)",
                    )
            if edge.target == SOURCE:
                raise _FieldError(f"dataflow[{i}].to", "nothing flows into source")
            if edge.source == SINK:
                raise _FieldError(f"dataflow[{i}].from", "nothing flows out of sink")
            if edge.source == edge.target:
                raise _FieldError(f"dataflow[{i}]", f"{edge.source!r} feeds itself (cycle)")
            if edge.target in succ[edge.source]:
                raise _FieldError(f"dataflow[{i}]", "edge appears twice")
            succ[edge.source].append(edge.target)
        cycle = _find_cycle(succ)
        if cycle:
            raise _FieldError("dataflow", f"cycle {' -> '.join(cycle)}")
        reach_from_source = _reachable(succ, SOURCE)
        pred: dict[str, list[str]] = {n: [] for n in nodes}
        for a, targets in succ.items():
            for b in targets:
                pred[b].append(a)
        reach_sink = _reachable(pred, SINK)
        for i, name in enumerate(names):
            if name not in reach_from_source:
                raise _FieldError(f"models[{i}]", f"{name!r} is not reachable from source")
            if name not in reach_sink:
                raise _FieldError(f"models[{i}]", f"{name!r} has no path to sink")
        missing = set(self.network.rtt_ms)
        for i, cand in enumerate(self.hardware.cloud):
            for j, region in enumerate(cand.regions):
                if region not in self.network.rtt_ms:
                    raise _FieldError(
                        f"hardware.cloud[{i}].regions[{j}]",
                        f"no network.rtt_ms given for region {region!r}",
                    )
                missing.discard(region)
        self._check_fleet()
        return self

    def _check_fleet(self) -> None:
        if not self.fleet:
            if not self.hardware.edge and not self.hardware.cloud:
                raise _FieldError("hardware", "name at least one edge device or cloud provider")
            return
        if self.hardware.edge:
            raise _FieldError("hardware.edge", "with fleet segments each segment's device is its "
                              "edge hardware; leave hardware.edge empty")
        names: set[str] = set()
        for i, seg in enumerate(self.fleet):
            if seg.name in names:
                raise _FieldError(f"fleet[{i}].name", f"segment name {seg.name!r} appears twice")
            names.add(seg.name)
            sites = seg.share * self.load.sites
            if abs(sites - round(sites)) > 1e-6:
                raise _FieldError(f"fleet[{i}].share", f"{seg.share:g} of {self.load.sites} sites is "
                                  f"{sites:g} sites; give a share that makes a whole number of sites")
        total = sum(seg.share for seg in self.fleet)
        if abs(total - 1.0) > 1e-6:
            raise _FieldError("fleet", f"segment shares add up to {total:g}, not 1")

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def digest(self) -> str:
        """sha256 of the canonical spec, recorded in every plan made from it."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(message)


def _reachable(succ: dict[str, list[str]], start: str) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _find_cycle(succ: dict[str, list[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for nxt in succ[node]:
            if colour.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in colour:
                found = visit(nxt)
                if found:
                    return found
        colour[node] = 2
        path.pop()
        return None

    for node in sorted(succ):
        if node not in colour:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(spec: ApplicationSpec) -> list[str]:
    """Models in dataflow order (source first), so paths and starts are computed in one pass."""
    succ: dict[str, list[str]] = {}
    indeg: dict[str, int] = {m.name: 0 for m in spec.models}
    for edge in spec.dataflow:
        succ.setdefault(edge.source, []).append(edge.target)
        if edge.target in indeg:
            indeg[edge.target] += 1
    for b in succ.get(SOURCE, []):
        if b in indeg:
            indeg[b] -= 1
    order, ready = [], sorted(n for n, d in indeg.items() if d == 0)
    while ready:
        node = ready.pop(0)
        order.append(node)
        for nxt in succ.get(node, []):
            if nxt in indeg:
                indeg[nxt] -= 1
                if indeg[nxt] == 0:
                    ready.append(nxt)
    return order


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    if kind in ("greater_than", "greater_than_equal"):
        limit = err.get("ctx", {}).get("gt", err.get("ctx", {}).get("ge"))
        return f"must be {'>' if kind == 'greater_than' else '>='} {limit}, got {err.get('input')!r}"
    if kind in ("less_than", "less_than_equal"):
        limit = err.get("ctx", {}).get("lt", err.get("ctx", {}).get("le"))
        return f"must be {'<' if kind == 'less_than' else '<='} {limit}, got {err.get('input')!r}"
    return msg.removeprefix("Value error, ")


def parse_spec(data: object, origin: str | None = None) -> ApplicationSpec:
    """Validate a spec already read into Python objects; errors become one-line `SpecError`s.

    Reads no files: whether the ONNX files exist and fit is checked when a Workspace resolves
    the models (`placement.resolve`), so an app can validate a spec before its files arrive."""
    if not isinstance(data, dict):
        raise SpecError("(top level)", "the spec must be a mapping of keys to values", origin)
    try:
        spec = ApplicationSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        ctx_error = first.get("ctx", {}).get("error")
        if isinstance(ctx_error, _FieldError):
            raise SpecError(ctx_error.field, ctx_error.message, origin) from None
        field = _loc(first["loc"]) or "(top level)"
        raise SpecError(field, _message(first), origin) from None
    return spec


# A spec is a page of YAML: anything this large or this deep is not one (and would cost minutes
# and gigabytes to parse before failing).
MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_DEPTH = 32


def load_spec(path: str | Path) -> tuple[ApplicationSpec, Path]:
    """Read and validate a YAML/JSON spec; returns the spec and the directory paths resolve from.

    Checked at the door, each as one `SpecError` line: the file exists and is a file, is at most
    `MAX_SPEC_BYTES`, is UTF-8 text (no NUL bytes), is YAML nested at most `MAX_SPEC_DEPTH`
    deep, and names no key twice in one mapping."""
    path = Path(path)
    origin = str(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise SpecError("(file)", "is a directory, not a spec file", origin)
        if size > MAX_SPEC_BYTES:
            raise SpecError("(file)", f"{size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,} bytes", origin)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError("(file)", "no such file", origin) from None
    except OSError as exc:
        raise SpecError("(file)", f"cannot read: {exc.strerror}", origin) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError("(file)", f"not UTF-8 text (byte {exc.start})", origin) from None
    if "\x00" in text:
        raise SpecError("(file)", "holds binary data (a NUL byte), not YAML text", origin)
    data = _safe_yaml(text, origin)
    base_dir = path.parent.resolve()
    return parse_spec(data, origin), base_dir


def _safe_yaml(text: str, origin: str | None) -> object:
    """`yaml.safe_load` that refuses duplicate keys, deep nesting and aliases that expand."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        _check_node(node, 0, set())
        return yaml.load(text, Loader=yaml.SafeLoader)
    except SpecError as exc:
        raise SpecError(exc.field, exc.message, origin) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise SpecError(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}", origin) from None
    except RecursionError:
        raise SpecError("(file)", f"nested more than {MAX_SPEC_DEPTH} levels deep", origin) from None


def _check_node(node, depth: int, seen: set[int]) -> None:
    where = f"line {node.start_mark.line + 1}"
    if depth > MAX_SPEC_DEPTH:
        raise SpecError(where, f"nested more than {MAX_SPEC_DEPTH} levels deep")
    if id(node) in seen:  # an alias: a spec has no use for them, and they can expand exponentially
        raise SpecError(where, "YAML aliases (*name) are not allowed in a spec")
    if isinstance(node, yaml.MappingNode):
        seen.add(id(node))
        keys: set[str] = set()
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            if name in keys:
                raise SpecError(f"line {key.start_mark.line + 1}", f"key {name!r} appears twice in one mapping")
            keys.add(name)
            _check_node(key, depth + 1, seen)
            _check_node(value, depth + 1, seen)
    elif isinstance(node, yaml.SequenceNode):
        seen.add(id(node))
        for item in node.value:
            _check_node(item, depth + 1, seen)


def spec_json_schema() -> dict:
    return ApplicationSpec.model_json_schema(by_alias=True)
