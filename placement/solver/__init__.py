"""The CP-SAT placement model: a pure function from a `Problem` to a `SolveResult`.

    units   integer micro-dollars and microseconds, rounded the safe way
    paths   static path bounds and the cost bound (pure data from the Problem)
    egress  tiered egress pricing as CP-SAT terms
    model   `PlacementModel`: data -> variables -> constraints -> objective; `run` -> `ModelRun`
    solve   `solve(problem, objective=, time_limit_s=, seed=, workers=) -> SolveResult`
"""

from placement.solver.model import GROUPS, ModelRun, PlacementModel, relative_gap
from placement.solver.solve import Objective, SolveResult, solve
from placement.solver.units import MICRO, US_PER_MS

__all__ = ["solve", "SolveResult", "Objective", "PlacementModel", "ModelRun", "GROUPS",
           "relative_gap", "MICRO", "US_PER_MS"]
