"""One folder per edge site (fleet segment, or the one device model of every site): the
artifacts of the pieces its device runs, `pipeline.json` (for each piece, where its output goes
next: a piece on the same device, a cloud pool's service, or back to the caller), the runner
that executes it, and both a docker-compose file and a systemd unit to run that runner.
"""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

import yaml

from placement.export.artifacts import TVM_RUNTIMES, Artifact
from placement.export.layout import Site, dns_name, file_name
from placement.export.triton import link_or_copy

RUNNER_PORT = 8080
INSTALL_DIR = "/opt/placement"


def cloud_url_placeholder(pool: str) -> str:
    return f"http://REPLACE-ME-{pool}:8000"


def write_site(site: Site, artifacts: dict, root: Path, folder: Path, *, application: str,
               cloud_models: dict[str, dict], tvm_version: str | None) -> list[str]:
    """Write the site's folder under `root/folder`; returns the files written (relative to root)."""
    written: list[str] = []
    entries = []
    for unit in site.units:
        artifact: Artifact = artifacts[unit.artifact_key]
        piece_dir = Path("pieces") / file_name(unit.name).replace(":", "_")
        entry = {"name": unit.name, "piece": unit.piece, "model": unit.model, "runtime": unit.runtime,
                 "hardware": unit.hardware, "batch": unit.batch,
                 "device": "cuda" if unit.runtime in TVM_RUNTIMES and (unit.tvm_target or {}).get("kind") == "cuda"
                 else "cpu",
                 "onnx": str(piece_dir / "model.onnx"), "io": str(piece_dir / "io.json"),
                 "next": site.next_hops.get(unit.name, ["sink"])}
        files_here = {"model.onnx": artifact.onnx, "io.json": str(Path(artifact.onnx).parent / "io.json")}
        if artifact.library:
            entry["library"] = str(piece_dir / "model.so")
            entry["target"] = str(piece_dir / "target.json")
            files_here.update({"model.so": artifact.library, "target.json": artifact.target_file})
        if artifact.session:
            entry["session"] = str(piece_dir / "session.json")
            files_here["session.json"] = artifact.session
        for name, src in files_here.items():
            link_or_copy(root / src, root / folder / piece_dir / name)
            written.append(str(folder / piece_dir / name))
        entries.append(entry)
    pools = sorted({hop[len("pool:"):].split("/")[0] for hops in site.next_hops.values() for hop in hops
                    if hop.startswith("pool:")} | {e[len("pool:"):].split("/")[0] for e in site.entry
                                                    if e.startswith("pool:")})
    pipeline = {
        "application": application, "site": site.name, "device": site.device, "offer": site.offer,
        "hardware": site.hardware, "entry": site.entry or [u.name for u in site.units[:1]],
        "pieces": entries,
        "cloud_urls": {p: cloud_url_placeholder(p) for p in pools},
        "cloud_models": {k: v for k, v in cloud_models.items() if k.split("/")[0] in pools},
    }
    _write(root / folder / "pipeline.json", json.dumps(pipeline, indent=2) + "\n", written, folder)
    shutil.copyfile(Path(str(files("placement.export") / "edge_runner.py")), root / folder / "runner.py")
    written.append(str(folder / "runner.py"))
    runtimes = {u.runtime for u in site.units}
    requirements = ["numpy"]
    if "onnxruntime" in runtimes:
        requirements.append("onnxruntime")
    if "openvino" in runtimes:
        requirements.append("openvino")
    if runtimes & set(TVM_RUNTIMES) and tvm_version:
        requirements.append(f"apache-tvm=={tvm_version.split(',')[0].strip()}")
    _write(root / folder / "requirements.txt", "\n".join(requirements) + "\n", written, folder)
    _write(root / folder / "Dockerfile", dockerfile(), written, folder)
    _write(root / folder / "docker-compose.yml", compose(site, any(e["device"] == "cuda" for e in entries)),
           written, folder)
    _write(root / folder / f"placement-{dns_name(site.name)}.service", systemd_unit(site), written, folder)
    return written


def _write(path: Path, text: str, written: list[str], folder: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    written.append(str(folder / path.name))


def dockerfile() -> str:
    return ("FROM python:3.11-slim\n"
            "WORKDIR /app\n"
            "COPY requirements.txt .\n"
            "RUN pip install --no-cache-dir -r requirements.txt\n"
            "COPY . .\n"
            f"EXPOSE {RUNNER_PORT}\n"
            f'CMD ["python3", "runner.py", "pipeline.json", "--port", "{RUNNER_PORT}"]\n')


def compose(site: Site, gpu: bool) -> str:
    service = {"build": ".", "image": f"placement-edge/{dns_name(site.name)}:latest",
               "restart": "unless-stopped", "ports": [f"{RUNNER_PORT}:{RUNNER_PORT}"],
               "healthcheck": {"test": ["CMD", "python3", "-c",
                                        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{RUNNER_PORT}/v2/health/ready')"],
                               "interval": "10s", "timeout": "3s", "retries": 3}}
    if gpu:  # a Jetson: the NVIDIA container runtime exposes the GPU
        service["runtime"] = "nvidia"
    return yaml.safe_dump({"services": {dns_name(site.name): service}}, sort_keys=False)


def systemd_unit(site: Site) -> str:
    where = f"{INSTALL_DIR}/{file_name(site.name)}"
    return (f"[Unit]\nDescription=placement pipeline for {site.name} ({site.device})\n"
            "After=network-online.target\nWants=network-online.target\n\n"
            f"[Service]\nType=simple\nWorkingDirectory={where}\n"
            f"ExecStart=/usr/bin/python3 {where}/runner.py {where}/pipeline.json --port {RUNNER_PORT}\n"
            "Restart=on-failure\nRestartSec=5\nDynamicUser=yes\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
