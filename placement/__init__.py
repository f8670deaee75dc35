"""Where each piece of an ONNX application should run: spec, problem, CP-SAT solver, plan, reports, CLI."""
