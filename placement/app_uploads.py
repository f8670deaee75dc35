"""Uploads for the app: a spec with its ONNX and CSV files, or one zip of them, saved in a
session's own folder. Everything a browser sends is refused by name when it is too large or
names a place outside the upload, before any of it is read as a model."""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import pandas as pd

from placement.spec import SpecError, load_spec
from profiles.errors import UserError

MB = 1024 * 1024
PROFILE_HEADER = {"piece", "hardware", "runtime", "latency_ms_p95"}  # how an uploaded CSV is recognised


class UploadError(UserError):
    """An uploaded file the app refuses; `str()` names the file and why."""


def _safe_name(name: str) -> str:
    """The base name of an uploaded file with anything odd replaced (never a path)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return base or "upload"


def _member_target(root: Path, member: str) -> Path:
    """Where a zip member lands inside `root`; a member naming a place outside it is refused."""
    rel = PurePosixPath(member.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise UploadError(f"upload: archive member {member!r} points outside the upload; refused")
    target = (root / Path(*rel.parts)).resolve()
    if not target.is_relative_to(root.resolve()):
        raise UploadError(f"upload: archive member {member!r} points outside the upload; refused")
    return target


def check_paths_inside(spec, base_dir: Path, origin: str) -> None:
    """Every file an uploaded spec names must be one of the uploaded files: a model or price
    file outside the upload is refused by name (never read)."""
    from profiles import zoo

    root = base_dir.resolve()
    named = [(f"models[{i}].onnx", m.onnx) for i, m in enumerate(spec.models) if not zoo.is_zoo_ref(m.onnx)]
    if spec.hardware.price_overrides:
        named.append(("hardware.price_overrides", spec.hardware.price_overrides))
    for field, value in named:
        path = Path(value)
        resolved = (path if path.is_absolute() else root / path).resolve()
        if path.is_absolute() or not resolved.is_relative_to(root):
            raise SpecError(field, f"{value!r} is outside the upload; only files uploaded with the spec "
                            "can be used", origin)


def save_upload(files: dict[str, bytes], root: Path, *, max_file_mb: float,
                max_total_mb: float) -> tuple[Path, Path | None]:
    """Check and save uploaded files (a spec, its ONNX and CSV files, or one zip of them) into
    `root`: the spec and, when one was uploaded, a profiles CSV. Refused by name: files over the
    caps, a zip member or a spec path pointing outside the upload."""
    if not files:
        raise UploadError("upload: no files")
    total = 0
    for name, data in files.items():
        if len(data) > max_file_mb * MB:
            raise UploadError(f"upload: {name} is {len(data) / MB:.1f} MB, over the {max_file_mb:g} MB "
                              "limit per file")
        total += len(data)
    if total > max_total_mb * MB:
        raise UploadError(f"upload: {total / MB:.1f} MB in all, over the {max_total_mb:g} MB limit")
    root.mkdir(parents=True)
    for name, data in files.items():
        if name.lower().endswith(".zip"):
            _unzip(name, data, root, max_total_mb)
        else:
            (root / _safe_name(name)).write_bytes(data)
    specs = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
    if not specs:
        raise UploadError("upload: no spec (.yaml) among " + ", ".join(sorted(files)))
    if len(specs) > 1:
        raise UploadError("upload: more than one spec: " + ", ".join(p.name for p in specs))
    spec, base_dir = load_spec(specs[0])  # yaml.safe_load; a bad field is a SpecError naming it
    check_paths_inside(spec, root, specs[0].name)
    profiles_csv = None
    for csv in sorted(root.rglob("*.csv")):
        try:
            header = set(pd.read_csv(csv, nrows=0).columns)
        except Exception:
            raise UploadError(f"upload: {csv.name} is not a readable CSV") from None
        if header >= PROFILE_HEADER:
            profiles_csv = csv
    return specs[0], profiles_csv

def _unzip(name: str, data: bytes, root: Path, max_total_mb: float) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UploadError(f"upload: {name} is not a zip archive") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        size = sum(m.file_size for m in members)
        if size > max_total_mb * MB:
            raise UploadError(f"upload: {name} unpacks to {size / MB:.1f} MB, over the "
                              f"{max_total_mb:g} MB limit")
        for member in members:
            target = _member_target(root, member.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
