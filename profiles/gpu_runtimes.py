"""The GPU runtimes: ONNX Runtime with the CUDA or the TensorRT execution provider.

- `onnxruntime-cuda`: the CUDA execution provider (cuDNN / cuBLAS kernels per operator), fp32.
- `onnxruntime-trt`: the TensorRT execution provider building an fp16 engine
  (`trt_fp16_enable`), as TensorRT deployments run; operators TensorRT cannot take fall back to
  the CUDA provider.

Both come with the `onnxruntime-gpu` package (`pip install placement-optimizer[gpu]`), which this
project does not require: where `onnxruntime.get_available_providers()` lacks the provider, or
no NVIDIA GPU of the catalog is present, `unavailable_reason` says why in one line and the
profiler skips the runtime. Rows measured with them belong to the GPU's hardware class
(`local_gpu_class`: the device name from `nvidia-smi` matched to a catalog class), not to this
machine's CPU class. Elsewhere they are estimated (`profiles.calibration.ASSUMED`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

GPU_RUNTIMES = ("onnxruntime-cuda", "onnxruntime-trt")
PRECISION = {"onnxruntime-cuda": "fp32", "onnxruntime-trt": "fp16"}
PROVIDERS = {
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "onnxruntime-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
# TensorRT builds its engine on the first run (seconds to minutes); the cache keeps it for the
# next session of the same model on the same GPU
PROVIDER_OPTIONS = {
    "onnxruntime-cuda": {"CUDAExecutionProvider": {"cudnn_conv_algo_search": "EXHAUSTIVE"}},
    "onnxruntime-trt": {"TensorrtExecutionProvider": {"trt_fp16_enable": "True",
                                                      "trt_engine_cache_enable": "True"}},
}

# `nvidia-smi --query-gpu=name` output -> catalog class, most specific pattern first
_GPU_NAMES = [
    (r"H100.*NVL", "nvidia-h100-nvl"), (r"H100", "nvidia-h100"),
    (r"A100.*80GB", "nvidia-a100-80gb"), (r"A100", "nvidia-a100-40gb"),
    (r"A10G", "nvidia-a10g"), (r"\bA10\b", "nvidia-a10"), (r"\bL4\b", "nvidia-l4"),
    (r"\bT4\b", "nvidia-t4"), (r"V100.*PCIE", "nvidia-v100-pcie"), (r"V100", "nvidia-v100"),
    (r"Orin Nano", "nvidia-orin-nano"), (r"Orin NX", "nvidia-orin-nx-16gb"),
    (r"AGX Orin", "nvidia-agx-orin-64gb"),
]


def gpu_class_of(device_name: str) -> str | None:
    """The catalog class of a GPU named as `nvidia-smi` names it ("Tesla T4" -> "nvidia-t4")."""
    return next((cls for pattern, cls in _GPU_NAMES if re.search(pattern, device_name, re.I)), None)


@lru_cache(maxsize=1)
def local_gpu_name() -> str | None:
    """The first GPU's name from `nvidia-smi`, or None where there is none."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return names[0] if names else None


def local_gpu_class() -> str | None:
    name = local_gpu_name()
    return gpu_class_of(name) if name else None


def available_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def unavailable_reason(runtime: str) -> str | None:
    """None when `runtime` can be measured here, else one line saying why not."""
    provider = PROVIDERS[runtime][0]
    if provider not in available_providers():
        return (f"{runtime}: ONNX Runtime here has no {provider} (install onnxruntime-gpu: "
                f"pip install 'placement-optimizer[gpu]')")
    name = local_gpu_name()
    if name is None:
        return f"{runtime}: no NVIDIA GPU found (nvidia-smi)"
    if gpu_class_of(name) is None:
        return f"{runtime}: GPU {name!r} is not a hardware class of the catalog"
    return None


def gpu_runtime_available(runtime: str) -> bool:
    return unavailable_reason(runtime) is None
