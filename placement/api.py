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

import pandas as pd

from placement.evaluate import Evaluation, evaluate, resolve_assignment
from placement.outputs import plans_json, write_outputs, write_text
from placement.overrides import Objective, Overrides, apply_overrides
from placement.plan import Plan, make_plan
from placement.problem import Problem, build_problem
from placement.resolve import ResolvedModel, check_hardware_ids, resolve_models
from placement.solver import SolveResult, solve
from placement.spec import ApplicationSpec, SpecError, load_spec
from placement.tables import (
    InputError,
    candidate_hardware,
    demo_spec_path,
    example_spec_paths,
    list_offers,
    load_offers,
    load_profiles,
    parse_assignments,
    parse_batches,
    profile_store,
    read_csv,
    refresh_prices,
    select_offers_in,
    team_offers,
    tvm_version_of,
)
from profiles import table as pt
from profiles.providers import default_row_providers

__all__ = [
    "InputError", "Objective", "Overrides", "PlanOutcome", "Workspace", "apply_overrides",
    "candidate_hardware", "demo_spec_path", "example_spec_paths", "list_offers", "load_offers",
    "load_profiles", "parse_assignments", "parse_batches", "plans_json", "profile_store", "read_csv",
    "refresh_prices", "select_offers_in", "team_offers", "tvm_version_of", "write_outputs", "write_text",
]


@dataclass
class PlanOutcome:
    plan: Plan
    problem: Problem
    result: SolveResult
    evaluation: Evaluation | None
    spec: ApplicationSpec | None = None


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
    _profiled: bool = field(default=False, repr=False)  # profiles came from the profiler

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
        """Fail early, naming the field: unknown hardware ids, a price override file that is
        missing or bad, missing or unusable ONNX files — before any profiling."""
        check_hardware_ids(self.spec, self.offers_table, self.origin)
        self.team_offers()
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
                                    input_shapes=resolved.input_shapes,
                                    sample_inputs=resolved.sample_inputs)
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

        providers = default_row_providers() if self.row_providers is None else self.row_providers
        report = profile_pieces(self.pieces, hardware or self.hardware(), config=self.profile_config,
                                on_progress=progress, batches=self.batches, row_providers=providers)
        self.profiles_table = report.table
        self.profile_problems = list(report.problems)
        self._profiled = True
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
        missing = set(self.hardware(spec)) - set(profiles[pt.HARDWARE])
        if missing and self._profiled:
            profiles = self.profile(hardware=sorted(set(self.hardware()) | set(self.hardware(spec)))).table
        return profiles

    def profile_remote(self, tracker: str | None = None, remote_config: Path | None = None,
                       progress=None) -> list[str]:
        """Also measure every piece on the devices of a TVM RPC tracker (rows `measured-rpc`,
        merged into the profiles); returns warning lines for measurements that failed."""
        from placement.jobs import remote_config as load_remote
        from placement.jobs import remote_rows
        from profiles.rows import merge_rows

        config, tracker = load_remote(remote_config, tracker)
        rows, warnings = remote_rows(self.pieces, tracker, config, on_progress=progress)
        self.profiles_table = merge_rows(self.profiles, rows)
        self._problems.clear()
        return warnings

    def tune(self, *, budget: str | float = "20m", hardware: str | None = None,
             pieces: list[str] | None = None, trials_per_task: int | None = None, progress=None,
             cancel=None):
        """Tune pieces with MetaSchedule within a time budget (split equally over the pieces);
        the next plan picks the tuned rows up (profiles are re-read from the warm cache)."""
        from placement.jobs import select_pieces, tune_pieces

        outcome = tune_pieces(select_pieces(self.pieces, pieces), budget=budget, hardware=hardware,
                              trials_per_task=trials_per_task, on_progress=progress, cancel=cancel)
        if outcome.results and self._profiled:
            self.profiles_table = None  # tuned rows arrive through the row providers
            self._problems.clear()
        return outcome

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

    def analyse(self, outcome: PlanOutcome, *, time_limit_s: float | None = None) -> PlanOutcome:
        """What `plan(analyse=True)` adds, for an outcome of `plan(analyse=False)`: baselines and
        slack (or, when infeasible, the explanation) on a copy of its plan; nothing re-solved but
        the analysis' own solves. The outcome given is left as it was."""
        from placement.baselines import baselines
        from placement.explain import explain_infeasible, slack_report
        from placement.plan import attach_analysis

        spec = outcome.spec or self.spec
        kw = self._solver_kw(spec, time_limit_s)
        plan = outcome.plan.model_copy(deep=True)
        if outcome.evaluation is not None:
            attach_analysis(plan, baselines=baselines(outcome.problem, **kw),
                            slack=slack_report(outcome.problem, outcome.evaluation, outcome.result.objective, **kw))
        elif outcome.result.status == "infeasible":
            attach_analysis(plan, explanation=explain_infeasible(outcome.problem, **kw))
        return PlanOutcome(plan, outcome.problem, outcome.result, outcome.evaluation, spec)

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
