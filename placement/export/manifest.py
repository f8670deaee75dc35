"""`manifest.json` at the bundle's root: every file with its sha256 and what it belongs to
(piece, runtime, target, offer), the pools and sites, and the plan's digest. Its JSON Schema is
generated from the model below into `docs/manifest.schema.json`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_VERSION = "1.0"
MANIFEST_FILE = "manifest.json"
PLAN_FILE = "plan.json"

FileKind = Literal["plan", "onnx", "io", "library", "target", "session", "kubernetes", "kserve",
                   "triton-config", "triton-model", "dockerfile", "pipeline", "runner",
                   "requirements", "compose", "systemd", "readme"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Model):
    path: str = Field(description="relative to the bundle root, '/'-separated")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    kind: FileKind
    pieces: list[str] = Field(default_factory=list, description="the pieces this file serves")
    runtime: str | None = None
    hardware: str | None = None
    target: dict | None = Field(default=None, description="TVM target (JSON dict) of a library")
    offers: list[str] = Field(default_factory=list, description="the offers it is deployed on")


class PlanDigest(_Model):
    spec_sha256: str
    price_date: str
    tool_version: str
    tvm_version: str | None
    plan_sha256: str = Field(description="sha256 of the bundle's plan.json")
    application: str
    status: str


class PoolEntry(_Model):
    name: str
    model: str
    offer: str
    provider: str
    region: str
    instance_type: str
    hardware: str
    replicas: int
    segments: list[str]
    pieces: list[str]
    runtimes: list[str]
    folder: str


class SiteEntry(_Model):
    name: str
    device: str
    offer: str
    hardware: str
    pieces: list[str]
    runtimes: list[str]
    folder: str


class Manifest(_Model):
    schema_version: Literal["1.0"] = MANIFEST_VERSION
    plan: PlanDigest
    generated_at: str
    pools: list[PoolEntry]
    sites: list[SiteEntry]
    files: list[FileEntry]
    validated: list[str] = Field(default_factory=list, description="what was validated offline at export")
    notes: list[str] = Field(default_factory=list)


def manifest_json_schema() -> dict:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "placement-optimizer export bundle manifest"
    return schema


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


if __name__ == "__main__":  # python -m placement.export.manifest > docs/manifest.schema.json
    import json

    print(json.dumps(manifest_json_schema(), indent=2))
