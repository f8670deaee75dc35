"""The one library surface: a `Workspace` made once from a spec, answering plan, frontier,
evaluate, offers, profile and tune. The CLI, the Panel app, the reports and the export are thin
shells over it.

Why a stateful object rather than free functions: the expensive steps (resolving models, reading
ONNX files for I/O bytes, profiling, building the problem) are done once and reused; a what-if
(`Overrides`) only redoes the steps whose inputs it changes, so an app can re-plan on every
slider move.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from placement.evaluate import Evaluation, evaluate, resolve_assignment
from placement.plan import Plan, make_plan
from placement.problem import Problem, build_problem, candidate_offers
from placement.resolve import ResolvedModel, check_hardware_ids, resolve_models
from placement.solver import SolveResult, solve
from placement.spec import ApplicationSpec, CloudCandidate, SpecError, load_spec, parse_spec
from pricing import table as ot
from profiles import table as pt
from profiles.errors import UserError

Objective = Literal["cost", "latency"]


class InputError(UserError):
    """A user-supplied file or value the tool cannot use; `str()` is the one line shown."""


@dataclass
class PlanOutcome:
    plan: Plan
    problem: Problem
    result: SolveResult
    evaluation: Evaluation | None
    spec: ApplicationSpec | None = None


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


def load_offers(offers_csv: str | Path | None = None) -> pd.DataFrame:
    """Refreshed prices from the catalog cache over the embedded snapshot, or a user's OfferTable
    CSV (DESIGN.md columns). Warnings (unreadable cache files) ride in `df.attrs["warnings"]`."""
    if offers_csv is None:
        from pricing.cache import load_offers as cached_offers

        offers, warnings = cached_offers()
        offers.attrs["warnings"] = warnings
        return offers
    return ot.validate_offer_table(read_csv(offers_csv), origin=str(offers_csv))


def load_profiles(profiles_csv: str | Path) -> pd.DataFrame:
    return pt.validate_profile_table(read_csv(profiles_csv), origin=str(profiles_csv))


def read_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def team_offers(spec: ApplicationSpec, base_dir: Path | None, offers: pd.DataFrame) -> pd.DataFrame:
    """The offers at the team's own prices: the spec's override CSV, then its discounts."""
    hw = spec.hardware
    if hw.price_overrides:
        from pricing.overrides import apply_overrides as apply_price_overrides

        path = Path(hw.price_overrides)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise InputError(f"hardware.price_overrides: {path}: no such file")
        offers = apply_price_overrides(offers, path)
    if hw.discount_percent:
        from pricing.overrides import apply_discounts

        offers = apply_discounts(offers, dict(hw.discount_percent))
    return offers


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`["piece=offer[/runtime][/rN]", ...]` -> {piece: offer}, as `evaluate` takes them."""
    wanted = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--assign {item!r}: expected piece=offer")
        piece, offer = item.split("=", 1)
        wanted[piece.strip()] = offer.strip()
    return wanted


def parse_batches(text: str | None) -> tuple[int, ...] | None:
    """'1,2,4,8' -> (1, 2, 4, 8); None stays None (profile the spec's shapes as given)."""
    if not text:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--batches: expected comma-separated positive integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise InputError(f"--batches: batch sizes must be positive, got {text!r}")
    return values


def select_offers_in(offers: pd.DataFrame, *, tiers=None, **filters) -> pd.DataFrame:
    from pricing.query import select_offers

    sel = select_offers(offers, **filters)
    return sel[sel[ot.TIER].isin(list(tiers))] if tiers else sel


def list_offers(offers_csv: str | Path | None = None, *, max_age_days: int | None = None,
                **filters) -> tuple[pd.DataFrame, list[str]]:
    """The offers the planner can buy (fetched prices over the snapshot, or a CSV), filtered,
    with warnings about prices older than `max_age_days`. No spec needed."""
    from pricing.cache import load_offers as cached_offers
    from pricing.cache import stale_price_warning

    if offers_csv is not None:
        offers = load_offers(offers_csv)
        warnings = [] if max_age_days is None else [
            w for d in sorted(set(offers[ot.PRICE_DATE].astype(str)))
            if (w := stale_price_warning(d, max_age_days))]
    else:
        offers, warnings = cached_offers(max_age_days=max_age_days)
    selected = select_offers_in(offers, **filters)
    if selected.empty:
        raise InputError("prices: no offers match these filters")
    return selected, warnings


def refresh_prices(provider: str, region: str, *, instance_types=None, max_age_days=None,
                   on_progress=None):
    """Fetch one provider region's current prices into the catalog cache; a failed fetch keeps
    the previous prices and says so in the result (`status`, `warnings`)."""
    from pricing.cache import refresh
    from pricing.fetch import PROVIDER_MODULES, PriceFetchError

    if provider not in PROVIDER_MODULES:
        raise PriceFetchError(f"prices refresh: --provider must be one of {', '.join(PROVIDER_MODULES)}")
    return refresh(provider, region, instance_types=instance_types, max_age_days=max_age_days,
                   on_progress=on_progress)


def profile_store():
    """The rows measured on this machine and imported (list, export, import)."""
    from profiles.cache import ProfileCache

    cache = ProfileCache()
    cache.sync_store()  # rows measured before the store existed
    return cache.store


def write_text(path: str | Path, text: str) -> None:
    """Write an output file atomically; a path that cannot be written is one line naming it."""
    from profiles.paths import atomic_write_text

    path = Path(path)
    try:
        atomic_write_text(path, text)
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; give a file path") from None
    except (NotADirectoryError, FileNotFoundError, FileExistsError):
        raise InputError(f"{path}: cannot write here (its folder does not exist or is a file)") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None


def write_outputs(outcome: PlanOutcome, plan_path: str | Path | None = None,
                  summary_path: str | Path | None = None) -> None:
    """plan.json (for deployers) and the Markdown summary, from the same plan."""
    from placement.report import markdown_summary

    if plan_path:
        write_text(plan_path, outcome.plan.model_dump_json(indent=2) + "\n")
    if summary_path:
        write_text(summary_path, markdown_summary(outcome.plan))


def plans_json(plans: list[Plan]) -> str:
    return "[" + ",\n".join(p.model_dump_json(indent=2) for p in plans) + "]"


def candidate_hardware(spec: ApplicationSpec, offers: pd.DataFrame) -> list[str]:
    """Hardware classes behind the offers the spec allows: what must be profiled."""
    return sorted(set(candidate_offers(spec, offers)[ot.HARDWARE]))


def tvm_version_of(profiles: pd.DataFrame) -> str | None:
    versions = sorted({str(v) for v in profiles[pt.TVM_VERSION].dropna() if str(v)})
    return ", ".join(versions) if versions else None


def demo_spec_path() -> Path:
    from importlib.resources import files

    return Path(str(files("placement") / "data" / "demo.yaml"))


def example_spec_paths() -> dict[str, Path]:
    """The bundled examples by name: the demo and every spec under examples/ in a source tree."""
    found = {"demo": demo_spec_path()}
    examples = Path(__file__).resolve().parents[1] / "examples"
    if examples.is_dir():
        for path in sorted(examples.glob("*.yaml")):
            found[path.stem] = path
    return found


@dataclass
class Workspace:
    """Everything one spec's questions need, computed once and reused by every answer.

    Made with `Workspace.open(path)` (reads the spec, offers and, if given, a profiles CSV) or
    directly from a parsed spec and tables. Profiles come from the profiler (measured here and
    estimated, plus the rows of `row_providers`: cached tuned and remote-measured rows by
    default) or from a CSV; either way they are explicit, never a module-level registry."""

    spec: ApplicationSpec
    base_dir: Path | None = None
    offers_table: pd.DataFrame | None = None
    profiles_table: pd.DataFrame | None = None
    io_bytes: dict[str, tuple[int, int]] | None = None
    origin: str | None = None
    batches: tuple[int, ...] | None = None
    row_providers: tuple | None = None
    profile_config: object | None = None
    profile_problems: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _models: list[ResolvedModel] | None = field(default=None, repr=False)
    _pieces: list | None = field(default=None, repr=False)
    _problems: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _team_offers: dict = field(default_factory=dict, repr=False)

    # -- making one -------------------------------------------------------------------------

    @classmethod
    def open(cls, spec_path: str | Path, *, offers_csv: str | Path | None = None,
             profiles_csv: str | Path | None = None, batches: tuple[int, ...] | None = None,
             **kw) -> Workspace:
        """Read the spec and the tables, check hardware ids and model files; profile lazily."""
        spec, base_dir = load_spec(spec_path)
        ws = cls(spec, base_dir, offers_table=load_offers(offers_csv),
                 profiles_table=load_profiles(profiles_csv) if profiles_csv is not None else None,
                 origin=str(spec_path), batches=batches, **kw)
        ws.check()
        return ws

    def __post_init__(self):
        if self.offers_table is None:
            self.offers_table = load_offers()
        self.warnings = list(self.offers_table.attrs.get("warnings", [])) + list(self.warnings)

    def check(self) -> None:
        """Fail early, naming the field: unknown hardware ids, missing or unusable ONNX files."""
        check_hardware_ids(self.spec, self.offers_table, self.origin)
        if self.io_bytes is None or self.profiles_table is None:
            _ = self.models

    # -- the models and pieces --------------------------------------------------------------

    @property
    def models(self) -> list[ResolvedModel]:
        if self._models is None:
            self._models = resolve_models(self.spec, self.base_dir, self.origin)
        return self._models

    @property
    def pieces(self) -> list:
        """What to profile: every model, plus the head and tail of each cut its `split` allows."""
        if self._pieces is None:
            from profiles.profiler import PieceSource
            from profiles.split import SplitError, candidate_cuts, split_sources

            sources = []
            for i, (m, resolved) in enumerate(zip(self.spec.models, self.models)):
                whole = PieceSource(piece=m.name, onnx_path=resolved.onnx_path,
                                    input_shapes=resolved.input_shapes)
                sources.append(whole)
                if m.split == "none":
                    continue
                try:
                    tensors = ([c.tensor for c in candidate_cuts(whole.onnx_path, whole.input_shapes)]
                               if m.split == "auto" else list(m.split))
                    for tensor in tensors:
                        sources.extend(split_sources(whole, tensor))
                except SplitError as exc:
                    raise SpecError(f"models[{i}].split", str(exc), self.origin) from None
            self._pieces = sources
        return self._pieces

    def piece_io_bytes(self) -> dict[str, tuple[int, int]]:
        """Bytes in and out of one call of each piece, read from its ONNX graph once."""
        if self.io_bytes is None:
            from profiles.profiler import piece_io_bytes

            self.io_bytes = {}
            for source in self.pieces:
                io = piece_io_bytes(source)
                self.io_bytes[source.piece] = (io.input_bytes, io.output_bytes)
        return self.io_bytes

    # -- profiles ---------------------------------------------------------------------------

    def hardware(self, spec: ApplicationSpec | None = None) -> list[str]:
        return candidate_hardware(spec or self.spec, self.offers_table)

    def profile(self, progress=None, *, hardware: list[str] | None = None):
        """Measure every piece here (cached by content) and estimate it on the candidate
        hardware; `progress` receives the profiler's events. Returns the profiler's report
        (table and problems) and keeps its table for planning."""
        from profiles.profiler import profile_pieces

        providers = self.row_providers
        if providers is None:
            providers = tuple(_default_row_providers())
        report = profile_pieces(self.pieces, hardware or self.hardware(), config=self.profile_config,
                                on_progress=progress, batches=self.batches,
                                **_provider_kwargs(providers))
        self.profiles_table = report.table
        self.profile_problems = list(report.problems)
        self._problems.clear()
        return report

    @property
    def profiles(self) -> pd.DataFrame:
        if self.profiles_table is None:
            self.profile()
        return self.profiles_table

    def _profiles_for(self, spec: ApplicationSpec) -> pd.DataFrame:
        """The profiles, extended when a what-if adds hardware nobody profiled yet."""
        profiles = self.profiles
        if self.io_bytes is not None and self._models is None:
            return profiles  # tables handed in: nothing to profile from
        missing = set(self.hardware(spec)) - set(profiles[pt.HARDWARE])
        if missing and not profiles.empty and (profiles[pt.SOURCE] != "imported").all():
            profiles = self.profile(hardware=sorted(set(self.hardware()) | set(self.hardware(spec))))
        return profiles

    # -- offers -----------------------------------------------------------------------------

    def team_offers(self, spec: ApplicationSpec | None = None) -> pd.DataFrame:
        spec = spec or self.spec
        key = (spec.hardware.price_overrides, tuple(sorted(spec.hardware.discount_percent.items())))
        if key not in self._team_offers:
            self._team_offers[key] = team_offers(spec, self.base_dir, self.offers_table)
        return self._team_offers[key]

    def offers(self, *, team_prices: bool = False, tiers=None, **filters) -> pd.DataFrame:
        """The offer table filtered (`pricing.query.select_offers` filters: providers, regions,
        instance_types, devices, gpu, max_hourly); with `team_prices`, at the spec's negotiated
        prices and discounts."""
        return select_offers_in(self.team_offers() if team_prices else self.offers_table,
                                tiers=tiers, **filters)

    # -- the problem and its answers --------------------------------------------------------

    def spec_with(self, overrides: Overrides | None) -> ApplicationSpec:
        spec = apply_overrides(self.spec, overrides)
        if spec is not self.spec:
            check_hardware_ids(spec, self.offers_table, "overrides")
        return spec

    def problem(self, overrides: Overrides | None = None, *, prune: bool = True) -> Problem:
        """The built problem for the spec as overridden; rebuilt only when its inputs change."""
        spec = self.spec_with(overrides)
        profiles = self._profiles_for(spec)
        key = (spec.digest(), prune, id(profiles))
        problem = self._problems.get(key)
        if problem is None:
            problem = build_problem(spec, profiles, self.team_offers(spec), self.piece_io_bytes(),
                                    prune=prune)
            self._problems[key] = problem
            while len(self._problems) > 16:
                self._problems.popitem(last=False)
        else:
            self._problems.move_to_end(key)
        return problem

    def _make_plan(self, problem: Problem, result: SolveResult, evaluation: Evaluation | None) -> Plan:
        from pricing.cache import stale_price_warning

        return make_plan(problem, result, evaluation, tvm_version=tvm_version_of(self.profiles),
                         price_warning=stale_price_warning(problem.price_date, problem.max_price_age_days))

    def _solver_kw(self, spec: ApplicationSpec, time_limit_s: float | None = None) -> dict:
        return dict(time_limit_s=time_limit_s or spec.solver.time_limit_s, seed=spec.solver.seed,
                    workers=spec.solver.workers)

    def plan(self, overrides: Overrides | None = None, *, objective: Objective | None = None,
             time_limit_s: float | None = None, analyse: bool = True) -> PlanOutcome:
        """Solve, then re-evaluate the chosen assignment with the independent checker; with
        `analyse`, add baselines and constraint slack (or, when infeasible, the explanation)."""
        from placement.baselines import baselines
        from placement.explain import explain_infeasible, slack_report
        from placement.plan import attach_analysis

        spec = self.spec_with(overrides)
        objective = objective or (overrides.objective if overrides else None) or "cost"
        problem = self.problem(overrides)
        kw = self._solver_kw(spec, time_limit_s)
        result = solve(problem, objective=objective, **kw)
        evaluation = evaluate(problem, result.assignment) if result.assignment else None
        if evaluation is not None and not evaluation.feasible:  # pragma: no cover - checker disagrees
            raise AssertionError(f"solver plan fails the checker: {evaluation.violations}")
        plan = self._make_plan(problem, result, evaluation)
        if analyse:
            if evaluation is not None:
                attach_analysis(plan, baselines=baselines(problem, **kw),
                                slack=slack_report(problem, evaluation, objective, **kw))
            elif result.status == "infeasible":
                attach_analysis(plan, explanation=explain_infeasible(problem, **kw))
        return PlanOutcome(plan, problem, result, evaluation, spec)

    def frontier(self, overrides: Overrides | None = None, *, max_points: int = 20) -> list[Plan]:
        """Every Pareto point as a full plan (status 'optimal' per point; the SLO is swept)."""
        from placement.frontier import frontier

        spec = self.spec_with(overrides)
        problem = self.problem(overrides)
        points = frontier(problem, max_points=max_points, **self._solver_kw(spec))
        plans = []
        for point in points:
            result = SolveResult(
                status=point.status, assignment=point.assignment, objective="frontier",
                objective_value=point.monthly_usd, best_bound=None, gap=None, wall_time_s=0.0,
                workers=spec.solver.workers, seed=spec.solver.seed, time_limit_s=spec.solver.time_limit_s,
                num_options=sum(len(v) for v in problem.options.values()),
            )
            plans.append(self._make_plan(problem, result, point.evaluation))
        return plans

    def evaluate(self, assignment: dict[str, str] | list[str],
                 overrides: Overrides | None = None) -> PlanOutcome:
        """What-if: the numbers of a placement the user names, with every constraint it breaks.
        `assignment` maps piece -> offer[/runtime][/rN], or is a list of `piece=offer` items."""
        if isinstance(assignment, list):
            assignment = parse_assignments(assignment)
        spec = self.spec_with(overrides)
        # Unpruned: a user may ask about an option the optimiser would never pick.
        problem = self.problem(overrides, prune=False)
        chosen = resolve_assignment(problem, assignment)
        evaluation = evaluate(problem, chosen)
        result = SolveResult(
            status="evaluated", assignment={p: o.id for p, o in chosen.items()}, objective="what-if",
            objective_value=evaluation.monthly_usd, best_bound=None, gap=None, wall_time_s=0.0,
            workers=0, seed=0, time_limit_s=0.0,
            num_options=sum(len(v) for v in problem.options.values()),
        )
        plan = self._make_plan(problem, result, evaluation)
        return PlanOutcome(plan, problem, result, evaluation, spec)


def _default_row_providers() -> list:
    """Cached tvm-tuned and measured-rpc rows, found by content for the pieces profiled."""
    try:
        from profiles.providers import default_row_providers
    except ImportError:  # pragma: no cover - TEMPORARY until the profiles refactor lands
        from profiles.tuning import register_row_providers

        register_row_providers()
        return []
    return list(default_row_providers())


def _provider_kwargs(providers) -> dict:
    import inspect

    from profiles.profiler import profile_pieces

    if "row_providers" in inspect.signature(profile_pieces).parameters:
        return {"row_providers": tuple(providers)}
    return {}
