#!/usr/bin/env python3
"""Run one site's pieces as `pipeline.json` describes them (shipped into every edge folder of a
placement-optimizer bundle as `runner.py`; needs only numpy and the pieces' runtimes:
onnxruntime, or the TVM runtime for compiled libraries).

    python3 runner.py pipeline.json --port 8080     # serve POST /v2/models/<entry>/infer
    python3 runner.py pipeline.json --once in.npz   # run once, print the outputs' shapes

Requests and responses use the KServe v2 / Triton JSON protocol. A piece's output goes to the
next piece on this device, or to a cloud pool's service (`cloud_urls` in pipeline.json: fill in
each pool's address; the URL is called with the same protocol), or back to the caller.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

TVM_RUNTIMES = ("tvm", "tvm-tuned")


def session_providers(settings: dict, available) -> list:
    """session.json's execution providers that this machine has, in its order, each with the
    options the profiler measured with (TensorRT's fp16 engine and its cache); the CPU otherwise."""
    options = settings.get("provider_options", {})
    chosen = [(p, options.get(p, {})) for p in settings.get("execution_providers", []) if p in set(available)]
    return chosen or [("CPUExecutionProvider", {})]


class Piece:
    """One piece loaded with its runtime: call it with {input name: array}."""

    def __init__(self, folder: Path, spec: dict):
        self.name = spec["name"]
        self.runtime = spec["runtime"]
        self.io = json.loads((folder / spec["io"]).read_text())
        self.inputs = [v["name"] for v in self.io["inputs"]]
        self.outputs = [v["name"] for v in self.io["outputs"]]
        if self.runtime in TVM_RUNTIMES:
            import tvm
            from tvm import relax

            self._tvm = tvm
            self.dev = tvm.cuda(0) if spec.get("device") == "cuda" else tvm.cpu(0)
            self.vm = relax.VirtualMachine(tvm.runtime.load_module(str(folder / spec["library"])), self.dev)
        elif self.runtime == "openvino":
            import openvino as ov

            settings = json.loads((folder / spec["session"]).read_text())
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(folder / spec["onnx"])),
                                               settings.get("device", "CPU"), settings.get("properties", {}))
        else:
            import onnxruntime as ort

            settings = json.loads((folder / spec["session"]).read_text())
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(settings.get("intra_op_num_threads", 0))
            options.inter_op_num_threads = int(settings.get("inter_op_num_threads", 0))
            self.session = ort.InferenceSession(str(folder / spec["onnx"]), options,
                                                providers=session_providers(settings, ort.get_available_providers()))

    def __call__(self, feeds: dict) -> dict:
        if self.runtime in TVM_RUNTIMES:
            args = [self._tvm.runtime.tensor(np.ascontiguousarray(feeds[n]), self.dev) for n in self.inputs]
            return dict(zip(self.outputs, _flatten(self.vm["main"](*args))))
        if self.runtime == "openvino":
            result = self.compiled({n: feeds[n] for n in self.inputs})
            return dict(zip(self.outputs, (np.asarray(result[o]) for o in self.compiled.outputs)))
        return dict(zip(self.outputs, self.session.run(self.outputs, {n: feeds[n] for n in self.inputs})))


def _flatten(out) -> list:
    if hasattr(out, "numpy"):
        return [out.numpy()]
    result = []
    for item in out:
        result.extend(_flatten(item))
    return result


class Pipeline:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.spec = json.loads(self.path.read_text())
        folder = self.path.parent
        self.pieces = {p["name"]: Piece(folder, p) for p in self.spec["pieces"]}
        self.next = {p["name"]: p["next"] for p in self.spec["pieces"]}
        self.cloud_urls = self.spec.get("cloud_urls", {})

    def run(self, entry: str, feeds: dict) -> dict:
        """Run `entry` and every piece after it; the last outputs come back."""
        if entry.startswith("pool:"):
            return self.call_cloud(entry[len("pool:"):], feeds)
        outputs = self.pieces[entry](feeds)
        results = {}
        for hop in self.next[entry]:
            if hop == "sink":
                results.update(outputs)
            elif hop.startswith("pool:"):
                results.update(self.call_cloud(hop[len("pool:"):], outputs))
            else:
                results.update(self.run(hop, self.feeds_for(hop, outputs)))
        return results

    def feeds_for(self, piece: str, outputs: dict) -> dict:
        names = self.pieces[piece].inputs
        values = list(outputs.values())
        return {n: outputs.get(n, values[i] if i < len(values) else None) for i, n in enumerate(names)}

    def call_cloud(self, target: str, outputs: dict) -> dict:
        pool, _, model = target.partition("/")
        url = self.cloud_urls.get(pool, "")
        if not url or "REPLACE" in url:
            raise RuntimeError(f"pipeline.json: set cloud_urls[{pool!r}] to the pool's service URL")
        remote = self.spec["cloud_models"][target]
        body = to_v2(dict(zip(remote["inputs"], outputs.values())))
        request = urllib.request.Request(f"{url.rstrip('/')}/v2/models/{remote['triton_model']}/infer",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return from_v2(json.loads(response.read()))


def to_v2(arrays: dict) -> dict:
    return {"inputs": [{"name": k, "shape": list(v.shape), "datatype": _V2_TYPES[v.dtype.name],
                        "data": v.reshape(-1).tolist()} for k, v in arrays.items()]}


def from_v2(body: dict) -> dict:
    key = "outputs" if "outputs" in body else "inputs"
    return {t["name"]: np.asarray(t["data"], dtype=_NP_TYPES[t["datatype"]]).reshape(t["shape"])
            for t in body[key]}


_V2_TYPES = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64",
             "int32": "INT32", "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}
_NP_TYPES = {v: k for k, v in _V2_TYPES.items()}


def serve(pipeline: Pipeline, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's names
            ok = self.path in ("/v2/health/ready", "/v2/health/live")
            self.send_response(200 if ok else 404)
            self.end_headers()

        def do_POST(self):  # noqa: N802
            parts = self.path.strip("/").split("/")
            if len(parts) != 4 or parts[:2] != ["v2", "models"] or parts[3] != "infer" \
                    or parts[2] not in pipeline.pieces:
                self.send_response(404)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            outputs = pipeline.run(parts[2], from_v2(body))
            data = json.dumps({"model_name": parts[2], **{"outputs": to_v2(outputs)["inputs"]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", type=Path)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--once", type=Path, help="an .npz of the entry piece's inputs: run once")
    args = parser.parse_args(argv)
    pipeline = Pipeline(args.pipeline)
    if args.once:
        feeds = dict(np.load(args.once))
        for entry in pipeline.spec["entry"]:
            for name, value in pipeline.run(entry, feeds).items():
                print(f"{name}: {value.shape} {value.dtype}")
        return 0
    serve(pipeline, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
