"""The library calls the CLI, the Panel app and deployers share: spec in, tables and plans out.

Each function does one step of the flow in DESIGN.md and takes its inputs explicitly, so a
caller with its own profiles or offers (CSV from elsewhere) skips the steps it does not need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from placement.evaluate import Evaluation, evaluate, resolve_assignment
from placement.plan import Plan, make_plan
from placement.problem import Problem, build_problem
from placement.solver import SolveResult, solve
from placement.spec import ApplicationSpec, check_hardware_ids, input_shapes, resolve_onnx
from pricing import table as ot
from profiles import table as pt


class InputError(ValueError):
    """A user-supplied file or value the tool cannot use; `str()` is the one line shown."""


@dataclass
class PlanOutcome:
    plan: Plan
    problem: Problem
    result: SolveResult
    evaluation: Evaluation | None


def load_offers(offers_csv: str | Path | None = None) -> pd.DataFrame:
    """Refreshed prices from the catalog cache over the embedded snapshot, or a user's OfferTable
    CSV (DESIGN.md columns). Warnings (unreadable cache files) ride in `df.attrs["warnings"]`."""
    if offers_csv is None:
        from pricing.cache import load_offers as cached_offers

        offers, warnings = cached_offers()
        offers.attrs["warnings"] = warnings
        return offers
    return ot.validate_offer_table(_read_csv(offers_csv), origin=str(offers_csv))


def team_offers(spec: ApplicationSpec, base_dir: Path | None, offers: pd.DataFrame) -> pd.DataFrame:
    """The offers at the team's own prices: the spec's override CSV, then its discounts."""
    hw = spec.hardware
    if hw.price_overrides:
        from pricing.overrides import apply_overrides

        path = Path(hw.price_overrides)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise InputError(f"hardware.price_overrides: {path}: no such file")
        offers = apply_overrides(offers, path)
    if hw.discount_percent:
        from pricing.overrides import apply_discounts

        offers = apply_discounts(offers, dict(hw.discount_percent))
    return offers


def with_pricing_model(spec: ApplicationSpec, pricing_model: str) -> ApplicationSpec:
    """The same spec priced another way (on-demand, spot, reserved-1y, reserved-3y)."""
    return spec.model_copy(update={"hardware": spec.hardware.model_copy(update={"pricing_model": pricing_model})})


def load_profiles(profiles_csv: str | Path) -> pd.DataFrame:
    return pt.validate_profile_table(_read_csv(profiles_csv), origin=str(profiles_csv))


def _read_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def candidate_hardware(spec: ApplicationSpec, offers: pd.DataFrame) -> list[str]:
    """Hardware classes behind the offers the spec allows: what must be profiled."""
    from placement.problem import candidate_offers

    return sorted(set(candidate_offers(spec, offers)[ot.HARDWARE]))


def piece_sources(spec: ApplicationSpec, base_dir: Path | None):
    """What to profile: every model, plus the head and tail of each cut its `split` allows."""
    from placement.spec import SpecError
    from profiles.profiler import PieceSource

    sources = []
    for i, m in enumerate(spec.models):
        whole = PieceSource(piece=m.name, onnx_path=resolve_onnx(m, base_dir), input_shapes=input_shapes(m))
        sources.append(whole)
        if m.split == "none":
            continue
        from profiles.split import SplitError, candidate_cuts, split_sources

        try:
            tensors = ([c.tensor for c in candidate_cuts(whole.onnx_path, whole.input_shapes)]
                       if m.split == "auto" else list(m.split))
            for tensor in tensors:
                sources.extend(split_sources(whole, tensor))
        except SplitError as exc:
            raise SpecError(f"models[{i}].split", str(exc)) from None
    return sources


def profile_spec(spec: ApplicationSpec, base_dir: Path | None, offers: pd.DataFrame,
                 *, on_progress=None, config=None, batches=None):
    """Measure every model here (cached) and estimate it on every other candidate hardware;
    `batches` (e.g. (1, 2, 4, 8)) sweeps batch sizes for the planner's batching options."""
    from profiles.profiler import profile_pieces

    check_hardware_ids(spec, offers)
    return profile_pieces(piece_sources(spec, base_dir), candidate_hardware(spec, offers),
                          config=config, on_progress=on_progress, batches=batches)


def io_bytes_for(spec: ApplicationSpec, base_dir: Path | None) -> dict:
    """Bytes in and out of one call of each model, from its ONNX graph at the spec's shapes."""
    from profiles.profiler import piece_io_bytes

    out = {}
    for source in piece_sources(spec, base_dir):
        io = piece_io_bytes(source)
        out[source.piece] = (io.input_bytes, io.output_bytes)
    return out


def _tvm_version(profiles: pd.DataFrame) -> str | None:
    versions = sorted({str(v) for v in profiles[pt.TVM_VERSION].dropna() if str(v)})
    return ", ".join(versions) if versions else None


def build(spec: ApplicationSpec, base_dir: Path | None, profiles: pd.DataFrame,
          offers: pd.DataFrame, io_bytes: dict | None = None, *, prune: bool = True) -> Problem:
    check_hardware_ids(spec, offers)
    offers = team_offers(spec, base_dir, offers)
    if io_bytes is None:
        io_bytes = io_bytes_for(spec, base_dir)
    return build_problem(spec, profiles, offers, io_bytes, prune=prune)


def plan_spec(spec: ApplicationSpec, base_dir: Path | None, profiles: pd.DataFrame,
              offers: pd.DataFrame, *, objective: str = "cost", io_bytes: dict | None = None,
              time_limit_s: float | None = None, analyse: bool = True) -> PlanOutcome:
    """Solve, then re-evaluate the chosen assignment with the independent checker; with
    `analyse`, add baselines and constraint slack (or, when infeasible, the explanation)."""
    from placement.baselines import baselines
    from placement.explain import explain_infeasible, slack_report
    from placement.plan import attach_analysis

    problem = build(spec, base_dir, profiles, offers, io_bytes)
    kw = dict(time_limit_s=time_limit_s or spec.solver.time_limit_s, seed=spec.solver.seed,
              workers=spec.solver.workers)
    result = solve(problem, objective=objective, **kw)
    evaluation = evaluate(problem, result.assignment) if result.assignment else None
    if evaluation is not None and not evaluation.feasible:  # pragma: no cover - checker disagrees
        raise AssertionError(f"solver plan fails the checker: {evaluation.violations}")
    plan = make_plan(problem, result, evaluation, tvm_version=_tvm_version(profiles))
    if analyse:
        if evaluation is not None:
            attach_analysis(plan, baselines=baselines(problem, **kw),
                            slack=slack_report(problem, evaluation, objective, **kw))
        elif result.status == "infeasible":
            attach_analysis(plan, explanation=explain_infeasible(problem, **kw))
    return PlanOutcome(plan, problem, result, evaluation)


def frontier_spec(spec: ApplicationSpec, base_dir: Path | None, profiles: pd.DataFrame,
                  offers: pd.DataFrame, *, max_points: int = 20, io_bytes: dict | None = None) -> list[Plan]:
    """Every Pareto point as a full plan (status 'optimal' per point; the SLO is swept)."""
    from placement.frontier import frontier

    problem = build(spec, base_dir, profiles, offers, io_bytes)
    points = frontier(problem, max_points=max_points, time_limit_s=spec.solver.time_limit_s,
                      seed=spec.solver.seed, workers=spec.solver.workers)
    plans = []
    for point in points:
        result = SolveResult(
            status=point.status, assignment=point.assignment, objective="frontier",
            objective_value=point.monthly_usd, best_bound=None, gap=None, wall_time_s=0.0,
            workers=spec.solver.workers, seed=spec.solver.seed, time_limit_s=spec.solver.time_limit_s,
            num_options=sum(len(v) for v in problem.options.values()),
        )
        plans.append(make_plan(problem, result, point.evaluation, tvm_version=_tvm_version(profiles)))
    return plans


def evaluate_spec(spec: ApplicationSpec, base_dir: Path | None, profiles: pd.DataFrame,
                  offers: pd.DataFrame, assign: dict[str, str],
                  io_bytes: dict | None = None) -> PlanOutcome:
    """What-if: the numbers of a placement the user names, with every constraint it breaks."""
    # Unpruned: a user may ask about an option the optimiser would never pick.
    problem = build(spec, base_dir, profiles, offers, io_bytes, prune=False)
    chosen = resolve_assignment(problem, assign)
    evaluation = evaluate(problem, chosen)
    result = SolveResult(
        status="evaluated", assignment={p: o.id for p, o in chosen.items()}, objective="what-if",
        objective_value=evaluation.monthly_usd, best_bound=None, gap=None, wall_time_s=0.0,
        workers=0, seed=0, time_limit_s=0.0,
        num_options=sum(len(v) for v in problem.options.values()),
    )
    plan = make_plan(problem, result, evaluation, tvm_version=_tvm_version(profiles))
    return PlanOutcome(plan, problem, result, evaluation)


def demo_spec_path() -> Path:
    from importlib.resources import files

    return Path(str(files("placement") / "data" / "demo.yaml"))
