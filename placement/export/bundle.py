"""Turn a plan into a bundle a deployer ships with ordinary tools, and check a bundle later.

    bundle/
      manifest.json   plan.json
      artifacts/<piece>/b<batch>/...                 (see placement.export.artifacts)
      cloud/<pool>/k8s/{deployment,service}.yaml     kserve/inferenceservice.yaml
      cloud/<pool>/triton/<model>/{config.pbtxt,1/model.onnx}   cloud/<pool>/Dockerfile
      edge/<site>/{pipeline.json,runner.py,requirements.txt,Dockerfile,docker-compose.yml,*.service}
      edge/<site>/pieces/<piece>/...

The bundle is written into a temporary folder beside the output and moved into place at the end,
so a failed export leaves the previous bundle (or nothing) behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import yaml

from placement.export import edge, kserve, kubernetes, triton
from placement.export.artifacts import Artifact, build_artifact, piece_sources
from placement.export.errors import ExportError
from placement.export.layout import Layout, file_name, plan_layout, pool_model
from placement.export.manifest import (
    MANIFEST_FILE,
    PLAN_FILE,
    FileEntry,
    Manifest,
    PlanDigest,
    PoolEntry,
    SiteEntry,
    sha256_of,
)
from placement.plan import Plan


def load_plan(path: str | Path, spec_sha256: str | None = None) -> Plan:
    """A plan.json, checked to be a plan (and, given the spec's digest, made from that spec)."""
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        plan = Plan.read(path)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ExportError(f"{path}: not a plan.json ({where}: {first['msg']})") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise ExportError(f"{path}: not readable ({exc})") from None
    if spec_sha256 is not None and plan.provenance.spec_sha256 != spec_sha256:
        raise ExportError(f"{path}: made from another spec (its spec_sha256 {plan.provenance.spec_sha256[:12]}… "
                          f"is not this spec's {spec_sha256[:12]}…); re-plan with this spec")
    return plan


def export_bundle(ws, plan: Plan, out_dir: str | Path, *, progress=None) -> Manifest:
    """Write the bundle of `plan` (made from `ws`'s spec) to `out_dir`; returns its manifest."""
    if not plan.feasible or not plan.placements:
        raise ExportError(f"the plan is {plan.status} with no feasible placement: nothing to export")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
        raise ExportError(f"{out_dir}: exists and is not a bundle; choose an empty or new folder")
    layout = plan_layout(plan)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        manifest = _write_bundle(ws, plan, layout, root, progress)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        root.rename(out_dir)
    finally:
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
    return manifest


def _write_bundle(ws, plan: Plan, layout: Layout, root: Path, progress) -> Manifest:
    meta: dict[str, dict] = {}     # path -> FileEntry fields besides the hash
    notes: list[str] = []
    validated: list[str] = []
    sources = piece_sources(ws)
    prepared: dict = {}
    artifacts: dict[tuple, Artifact] = {}
    offers_of: dict[tuple, set[str]] = {}
    for pool in layout.pools:
        for u in pool.units:
            offers_of.setdefault(u.artifact_key, set()).add(pool.offer)
    for site in layout.sites:
        for u in site.units:
            offers_of.setdefault(u.artifact_key, set()).add(site.offer)
    for unit in layout.units:
        if progress:
            progress(f"artifact {unit.piece} ({unit.runtime} on {unit.hardware}, batch {unit.batch})")
        artifact, info = build_artifact(ws, sources, unit, root, prepared, progress)
        artifacts[unit.artifact_key] = artifact
        notes.extend(artifact.notes)
        offers = sorted(offers_of[unit.artifact_key])
        base = {"pieces": [unit.piece], "offers": offers}
        _merge(meta, artifact.onnx, kind="onnx", **base)
        _merge(meta, str(Path(artifact.onnx).parent / "io.json"), kind="io", **base)
        hw = {"runtime": unit.runtime, "hardware": unit.hardware}
        if artifact.library:
            meta[artifact.library] = {"kind": "library", **base, **hw, "target": info["target"]}
            meta[artifact.target_file] = {"kind": "target", **base, **hw, "target": info["target"]}
        if artifact.session:
            meta[artifact.session] = {"kind": "session", **base, **hw}

    waits = {(pool_model(p), p.offer): p.wait_ms for p in plan.placements if p.tier == "cloud"}
    offers = ws.offers_table.set_index("offer") if ws.offers_table is not None else None
    cloud_models: dict[str, dict] = {}
    for pool in layout.pools:
        folder = Path("cloud") / pool.name
        pool_artifacts = [artifacts[u.artifact_key] for u in pool.units]
        vcpus, memory, gpus = _offer_size(offers, pool.offer)
        base = {"pieces": [u.piece for u in pool.units], "offers": [pool.offer]}
        queue_us = max(100, int(round(waits.get((pool.model, pool.offer), 0.1) * 1000)))
        for path in triton.write_repository(pool, pool_artifacts, root, folder / "triton", gpu=gpus > 0,
                                            queue_delay_us=queue_us):
            meta[path] = {"kind": "triton-config" if path.endswith(".pbtxt") else "triton-model", **base}
        for a in pool_artifacts:
            cloud_models[f"{pool.name}/{a.unit.name}"] = {
                "triton_model": triton.triton_model_name(a), "inputs": [v["name"] for v in a.io["inputs"]]}
            if a.unit.runtime not in triton.SERVED_AS_PLANNED:
                where = a.library or a.session
                notes.append(f"{pool.name}: the plan runs {a.unit.piece} with {a.unit.runtime}; Triton serves "
                             f"its ONNX with ONNX Runtime; {where} is for a server of your own")
        tag = plan.provenance.spec_sha256[:12]
        (root / folder / "Dockerfile").write_text(
            f"FROM {kubernetes.TRITON_IMAGE}\nCOPY triton/ /models/\n")
        meta[str(folder / "Dockerfile")] = {"kind": "dockerfile", **base}
        k8s = {"deployment.yaml": kubernetes.deployment(pool, plan.application, vcpus=vcpus, memory_gib=memory,
                                                        gpus=gpus, image=kubernetes.pool_image(pool, tag)),
               "service.yaml": kubernetes.service(pool, plan.application)}
        for name, doc in k8s.items():
            text = kubernetes.dump([doc])
            problems = kubernetes.validate(text)
            if problems:
                raise ExportError(f"{folder}/k8s/{name}: {problems[0]}")
            _write(root, folder / "k8s" / name, text, meta, kind="kubernetes", **base)
        isvc = kserve.inference_service(pool, plan.application, vcpus=vcpus, memory_gib=memory, gpus=gpus)
        problems = kserve.validate(isvc)
        if problems:
            raise ExportError(f"{folder}/kserve/inferenceservice.yaml: {problems[0]}")
        _write(root, folder / "kserve" / "inferenceservice.yaml", kubernetes.dump([isvc]), meta, kind="kserve", **base)
        for a in pool_artifacts:
            config = (root / folder / "triton" / triton.triton_model_name(a) / "config.pbtxt").read_text()
            problems = triton.check_config(config, a)
            if problems:
                raise ExportError(f"{folder}/triton/{triton.triton_model_name(a)}/config.pbtxt: {problems[0]}")
    if layout.pools:
        validated += [f"Kubernetes manifests against the bundled OpenAPI schemas of Kubernetes "
                      f"{kubernetes.KUBERNETES_VERSION} (kubernetes-validate, strict)",
                      "KServe InferenceServices against the export's structural schema (jsonschema)",
                      "Triton config.pbtxt parsed with protobuf text_format (Triton ModelConfig fields)"]

    for site in layout.sites:
        folder = Path("edge") / file_name(site.name)
        written = edge.write_site(site, artifacts, root, folder, application=plan.application,
                                  cloud_models=cloud_models, tvm_version=plan.provenance.tvm_version)
        base = {"pieces": [u.piece for u in site.units], "offers": [site.offer]}
        for path in written:
            meta[path] = {"kind": _edge_kind(path), **base}
            if "/pieces/" in path:
                unit = next(u for u in site.units
                            if f"/pieces/{file_name(u.name).replace(':', '_')}/" in path)
                artifact_meta = _artifact_meta(meta, artifacts[unit.artifact_key], Path(path).name)
                meta[path] = {**artifact_meta, "offers": [site.offer]}
        yaml.safe_load((root / folder / "docker-compose.yml").read_text())
    if layout.sites:
        validated.append("edge pipeline.json next hops name pieces on the device, cloud pools or sink")

    plan_text = plan.model_dump_json(indent=2) + "\n"
    (root / PLAN_FILE).write_text(plan_text)
    meta[PLAN_FILE] = {"kind": "plan"}
    manifest = Manifest(
        plan=_digest(plan, sha256_of(root / PLAN_FILE)),
        generated_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        pools=[PoolEntry(name=p.name, model=p.model, offer=p.offer, provider=p.provider, region=p.region,
                         instance_type=p.instance_type, hardware=p.hardware, replicas=p.replicas,
                         segments=p.segments, pieces=[u.piece for u in p.units],
                         runtimes=sorted({u.runtime for u in p.units}), folder=f"cloud/{p.name}")
               for p in layout.pools],
        sites=[SiteEntry(name=s.name, device=s.device, offer=s.offer, hardware=s.hardware,
                         pieces=[u.piece for u in s.units], runtimes=sorted({u.runtime for u in s.units}),
                         folder=f"edge/{file_name(s.name)}") for s in layout.sites],
        files=[FileEntry(path=path, sha256=sha256_of(root / path), bytes=(root / path).stat().st_size,
                         **meta[path]) for path in sorted(meta)],
        validated=validated, notes=sorted(set(notes)),
    )
    _check_complete(root, manifest)
    (root / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _digest(plan: Plan, plan_sha256: str) -> PlanDigest:
    p = plan.provenance
    return PlanDigest(spec_sha256=p.spec_sha256, price_date=p.price_date, tool_version=p.tool_version,
                      tvm_version=p.tvm_version, plan_sha256=plan_sha256, application=plan.application,
                      status=plan.status)


def _merge(meta: dict, path: str, **fields) -> None:
    entry = meta.setdefault(path, {**fields, "pieces": [], "offers": []})
    entry["pieces"] = sorted(set(entry["pieces"]) | set(fields.get("pieces", [])))
    entry["offers"] = sorted(set(entry["offers"]) | set(fields.get("offers", [])))


def _artifact_meta(meta: dict, artifact: Artifact, name: str) -> dict:
    folder = str(Path(artifact.onnx).parent)
    source = {"model.onnx": artifact.onnx, "io.json": f"{folder}/io.json", "model.so": artifact.library,
              "target.json": artifact.target_file, "session.json": artifact.session}[name]
    return dict(meta[source])


def _edge_kind(path: str) -> str:
    name = Path(path).name
    return {"pipeline.json": "pipeline", "runner.py": "runner", "requirements.txt": "requirements",
            "Dockerfile": "dockerfile", "docker-compose.yml": "compose"}.get(
        name, "systemd" if name.endswith(".service") else "onnx")


def _write(root: Path, rel: Path, text: str, meta: dict, **fields) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
    meta[str(rel)] = fields


def _offer_size(offers, offer: str) -> tuple[float, float, int]:
    if offers is None or offer not in offers.index:
        raise ExportError(f"offer {offer!r} of the plan is not in the offer table; export with the "
                          "same --offers the plan was made with")
    row = offers.loc[offer]
    if hasattr(row, "iloc") and getattr(row, "ndim", 1) > 1:
        row = row.iloc[0]
    count = row.get("accelerator_count")
    gpus = int(count) if count == count and count else 0
    return float(row["vcpus"]), float(row["memory_gib"]), gpus


def _check_complete(root: Path, manifest: Manifest) -> None:
    listed = {f.path for f in manifest.files}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    missing = sorted(on_disk - listed)
    if missing:  # pragma: no cover - a writer that forgot to record its file
        raise AssertionError(f"files not in the manifest: {missing[:5]}")


# -- checking a bundle ---------------------------------------------------------------------------

def read_manifest(bundle: str | Path) -> Manifest:
    from pydantic import ValidationError

    path = Path(bundle) / MANIFEST_FILE
    if not path.is_file():
        raise ExportError(f"{bundle}: not a bundle (no {MANIFEST_FILE})")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not a valid manifest ({str(exc).splitlines()[0]})") from None


def check_bundle(bundle: str | Path, spec_sha256: str | None = None) -> list[str]:
    """Problems of a bundle: a file changed, missing or not in the manifest; a plan that does not
    match the manifest's pools and sites (or, given one, the spec); a manifest, Kubernetes or
    Triton file that no longer validates. Empty when the bundle is as exported."""
    import jsonschema

    from placement.export.manifest import manifest_json_schema

    root = Path(bundle)
    manifest = read_manifest(root)
    problems = [f"manifest.json: {e.message}" for e in jsonschema.Draft202012Validator(
        manifest_json_schema()).iter_errors(json.loads((root / MANIFEST_FILE).read_text()))]
    listed = {f.path: f for f in manifest.files}
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
        elif sha256_of(path) != entry.sha256:
            problems.append(f"{entry.path}: changed since export (sha256 differs)")
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    problems += [f"{p}: not in the manifest" for p in sorted(on_disk - set(listed))]
    if (root / PLAN_FILE).is_file():
        try:
            plan = Plan.read(root / PLAN_FILE)
        except Exception as exc:  # noqa: BLE001 - any unreadable plan is a problem to report
            problems.append(f"{PLAN_FILE}: not a plan ({str(exc).splitlines()[0]})")
        else:
            problems += _plan_matches(plan, manifest, spec_sha256)
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            continue
        if entry.kind == "kubernetes":
            problems += [f"{entry.path}: {p}" for p in kubernetes.validate(path.read_text())]
        elif entry.kind == "kserve":
            for doc in yaml.safe_load_all(path.read_text()):
                problems += [f"{entry.path}: {p}" for p in kserve.validate(doc)]
        elif entry.kind == "triton-config":
            problems += [f"{entry.path}: {p}" for p in triton.check_config(path.read_text())]
    return problems


def _plan_matches(plan: Plan, manifest: Manifest, spec_sha256: str | None) -> list[str]:
    problems = []
    if plan.provenance.spec_sha256 != manifest.plan.spec_sha256:
        problems.append("plan.json: its spec_sha256 differs from the manifest's")
    if spec_sha256 is not None and manifest.plan.spec_sha256 != spec_sha256:
        problems.append(f"the bundle was exported from another spec (spec_sha256 "
                        f"{manifest.plan.spec_sha256[:12]}…, this spec's {spec_sha256[:12]}…)")
    layout = plan_layout(plan)
    want_pools = {(p.name, p.offer, p.replicas, tuple(u.piece for u in p.units)) for p in layout.pools}
    have_pools = {(p.name, p.offer, p.replicas, tuple(p.pieces)) for p in manifest.pools}
    if want_pools != have_pools:
        problems.append("manifest.json: its cloud pools do not match plan.json's placements")
    want_sites = {(s.name, s.offer, tuple(u.piece for u in s.units)) for s in layout.sites}
    have_sites = {(s.name, s.offer, tuple(s.pieces)) for s in manifest.sites}
    if want_sites != have_sites:
        problems.append("manifest.json: its edge sites do not match plan.json's placements")
    return problems
