"""From a parsed spec to what can be profiled: the ONNX file and input shapes of every model and
the pieces (whole models, split heads and tails) — the Workspace's first step.

Kept out of `spec.py` so that parsing a spec reads no files: the app validates a spec the user is
still typing, and only resolving opens ONNX files or generates zoo models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from placement.spec import ApplicationSpec, ModelSpec, SpecError
from pricing import table as ot
from profiles import zoo


@dataclass(frozen=True)
class ResolvedModel:
    """A model of the spec with the file that holds it and the shapes it is profiled at."""

    name: str
    onnx_path: Path
    input_shapes: dict[str, list[int]]
    sample_inputs: Path | None = None  # .npz of the input values that matter


def resolve_onnx(model: ModelSpec, base_dir: Path | None) -> Path:
    """The ONNX file for a model: a zoo model is generated into the cache on first use."""
    if zoo.is_zoo_ref(model.onnx):
        return zoo.zoo_model_path(zoo.parse_zoo_ref(model.onnx))
    path = Path(model.onnx)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def input_shapes(model: ModelSpec, values: dict | None = None) -> dict[str, list[int]]:
    """The shapes of one call: the spec's `inputs`, then the shapes of the given values."""
    shapes = {k: list(v) for k, v in (model.inputs or {}).items()}
    for name, array in (values or {}).items():
        shapes.setdefault(name, [int(d) for d in array.shape])
    if shapes or not zoo.is_zoo_ref(model.onnx):
        return shapes
    return zoo.zoo_input_shapes(zoo.parse_zoo_ref(model.onnx))


def input_values(model: ModelSpec, base_dir: Path | None, field: str,
                 origin: str | None = None) -> dict:
    """name -> numpy array of the values a model runs with: its `sample_inputs` .npz, then its
    `input_values`; a bad file or value is a `SpecError` naming the field."""
    import numpy as np

    values: dict = {}
    if model.sample_inputs:
        path = Path(model.sample_inputs)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            with np.load(str(path), allow_pickle=False) as data:
                values.update({name: np.asarray(data[name]) for name in data.files})
        except FileNotFoundError:
            raise SpecError(f"{field}.sample_inputs", f"{str(path)!r} does not exist", origin) from None
        except (OSError, ValueError) as exc:
            raise SpecError(f"{field}.sample_inputs", f"{str(path)!r} is not a readable .npz "
                            f"({type(exc).__name__})", origin) from None
    for name, value in (model.input_values or {}).items():
        try:
            array = np.asarray(value)
            if array.dtype == object or not np.issubdtype(array.dtype, np.number):
                raise ValueError
        except ValueError:
            raise SpecError(f"{field}.input_values.{name}",
                            "must be a number or nested lists of numbers of one shape", origin) from None
        values[name] = array
    for name, array in values.items():
        declared = (model.inputs or {}).get(name)
        if declared is not None and list(declared) != [int(d) for d in array.shape]:
            raise SpecError(f"{field}.inputs.{name}", f"shape {list(declared)} but its values have "
                            f"shape {list(array.shape)}", origin)
    return values


def _values_file(values: dict) -> Path | None:
    """The values as a .npz in the cache, named by its content (the profiler keys rows by it)."""
    if not values:
        return None
    import hashlib
    import io

    import numpy as np

    from profiles.paths import atomic_write_bytes, cache_root

    buffer = io.BytesIO()
    np.savez(buffer, **{k: values[k] for k in sorted(values)})
    data = buffer.getvalue()
    path = cache_root() / "inputs" / f"{hashlib.sha256(data).hexdigest()[:32]}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    return path


def check_onnx_files(spec: ApplicationSpec, base_dir: Path | None, origin: str | None = None) -> None:
    """Every model names a zoo model or a readable ONNX file whose inputs the spec shapes fully."""
    import onnx

    for i, model in enumerate(spec.models):
        field = f"models[{i}].onnx"
        if zoo.is_zoo_ref(model.onnx):
            try:
                zoo.parse_zoo_ref(model.onnx)
            except KeyError as exc:
                raise SpecError(field, str(exc.args[0]), origin) from None
            continue
        values = input_values(model, base_dir, f"models[{i}]", origin)
        shapes = input_shapes(model, values)
        if not shapes:
            raise SpecError(f"models[{i}].inputs", "required for a model that is not from the zoo", origin)
        path = resolve_onnx(model, base_dir)
        if not path.is_file():
            raise SpecError(field, f"ONNX file {str(path)!r} does not exist", origin)
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # onnx raises DecodeError and friends
            raise SpecError(field, f"{str(path)!r} is not a valid ONNX model ({type(exc).__name__})", origin) from None
        initializers = {t.name for t in graph.initializer}
        graph_inputs = {v.name: v for v in graph.input if v.name not in initializers}
        for name, shape in shapes.items():
            if name not in graph_inputs:
                raise SpecError(
                    f"models[{i}].inputs.{name}",
                    f"the model has no input {name!r} (it has {', '.join(sorted(graph_inputs))})",
                    origin,
                )
            rank = len(graph_inputs[name].type.tensor_type.shape.dim)
            if rank and rank != len(shape):
                raise SpecError(
                    f"models[{i}].inputs.{name}",
                    f"shape has {len(shape)} dims but the model's input has {rank}",
                    origin,
                )
        for name in graph_inputs:
            if name not in shapes:
                raise SpecError(f"models[{i}].inputs", f"no shape given for model input {name!r}", origin)


def resolve_models(spec: ApplicationSpec, base_dir: Path | None,
                   origin: str | None = None) -> list[ResolvedModel]:
    """The checked file and shapes of every model (zoo models are generated on first use)."""
    check_onnx_files(spec, base_dir, origin)
    resolved = []
    for i, m in enumerate(spec.models):
        values = input_values(m, base_dir, f"models[{i}]", origin)
        resolved.append(ResolvedModel(m.name, resolve_onnx(m, base_dir), input_shapes(m, values),
                                      _values_file(values)))
    return resolved


def check_hardware_ids(spec: ApplicationSpec, offers, origin: str | None = None) -> None:
    """Unknown device or instance ids are user errors, found before anything is profiled."""
    edge_ids = set(offers.loc[offers[ot.TIER] == "edge", ot.INSTANCE_TYPE])
    named = [(f"hardware.edge[{i}]", d) for i, d in enumerate(spec.hardware.edge)]
    named += [(f"fleet[{i}].device", seg.device) for i, seg in enumerate(spec.fleet or [])]
    for field, device in named:
        if device not in edge_ids:
            raise SpecError(
                field, f"unknown edge device {device!r} (known: {', '.join(sorted(edge_ids))})", origin,
            )
    cloud = offers[offers[ot.TIER] == "cloud"]
    for i, cand in enumerate(spec.hardware.cloud):
        mine = cloud[cloud[ot.PROVIDER] == cand.provider]
        for j, region in enumerate(cand.regions):
            if not (mine[ot.REGION] == region).any():
                known = ", ".join(sorted(set(mine[ot.REGION])))
                raise SpecError(
                    f"hardware.cloud[{i}].regions[{j}]",
                    f"no {cand.provider} offers in region {region!r} (known: {known})",
                    origin,
                )
        for j, itype in enumerate(cand.instance_types or []):
            if not (mine[ot.INSTANCE_TYPE] == itype).any():
                raise SpecError(
                    f"hardware.cloud[{i}].instance_types[{j}]",
                    f"unknown {cand.provider} instance type {itype!r}",
                    origin,
                )
