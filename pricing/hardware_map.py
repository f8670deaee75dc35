"""Which hardware class an instance type runs on: instance families -> classes.

Used by the snapshot compiler, `python -m pricing.build_snapshot` and the live fetchers, so
an offer gets the same class whichever way it was priced. A CPU class is
`<arch>-<microarch>-<vCPUs>c` (c7a.large with 2 vCPUs -> `x86-zen4-2c`); a GPU or NPU class
is per device (g5.* -> `nvidia-a10g`). Only families whose processor the hardware catalog's
sources describe are mapped, and only to classes the catalog has: anything else is None, and
the caller drops the offer with a warning rather than guess its speed.

`specs` are what the provider reports about the type (any may be missing):
`vcpus`, `arch` ("x86_64" / "aarch64"), `accelerator_count` and `accelerator_name` (the
provider's own device name, e.g. "T4", "Inferentia2").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from pricing import table as ot
from profiles.hardware import hardware_catalog

ACCELERATOR_NAME = "accelerator_name"  # the provider's device name, only in specs

# AWS family -> CPU microarchitecture (the class prefix follows from the arch).
AWS_CPU_FAMILIES = {
    **dict.fromkeys(("c7a", "m7a", "r7a"), "zen4"),  # AMD EPYC 9R14, one core per vCPU
    **dict.fromkeys(("c7i", "m7i", "r7i"), "spr"),  # Xeon 8488C
    **dict.fromkeys(("c6i", "m6i", "r6i", "c6id", "m6id", "r6id"), "icx"),  # Xeon 8375C
    **dict.fromkeys(("m5", "m5d"), "skx"),  # Xeon 8175M / 8259CL
    **dict.fromkeys(("c7g", "m7g", "r7g", "c7gd", "m7gd", "r7gd"), "neoverse-v1"),  # Graviton3
    **dict.fromkeys(("c8g", "m8g", "r8g"), "neoverse-v2"),  # Graviton4
}
# AWS family -> (accelerator class, a token the provider's device name must contain).
AWS_ACCELERATOR_FAMILIES = {
    "g4dn": ("nvidia-t4", "t4"),
    "g5": ("nvidia-a10g", "a10g"),
    "g6": ("nvidia-l4", "l4"),
    "p3": ("nvidia-v100", "v100"),
    "p4d": ("nvidia-a100-40gb", "a100"),
    "p5": ("nvidia-h100", "h100"),
    "inf2": ("aws-inferentia2", "inferentia2"),
}

# Azure: Standard_<series><N><features>[_<accelerator>]_v<version>
_AZURE_SIZE = re.compile(
    r"^Standard_(?P<series>[A-Z]+)(?P<n>\d+)(?P<features>[a-z]*)(?:_(?P<acc>[A-Z][A-Za-z0-9]*))?"
    r"_v(?P<version>\d+)$")


def _known(value):
    """None for a missing value (None, NaN, empty string), else the value."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _arch_prefix(arch: str) -> str:
    return "arm" if arch == "aarch64" else "x86"


def _cpu_class(microarch: str, arch: str, vcpus, specs: Mapping) -> str | None:
    if vcpus is None or _known(specs.get(ot.ARCH)) not in (None, arch):
        return None
    if int(_known(specs.get(ot.ACCELERATOR_COUNT)) or 0) > 0:
        return None
    name = f"{_arch_prefix(arch)}-{microarch}-{int(vcpus)}c"
    return name if name in hardware_catalog() else None


def _accelerator_class(hw: str, token: str | None, specs: Mapping) -> str | None:
    count = _known(specs.get(ot.ACCELERATOR_COUNT))
    if count is not None and float(count) < 1:
        return None  # a fractional or absent device is not this class
    if _known(specs.get(ot.ARCH)) not in (None, "x86_64"):
        return None  # every accelerator class here sits on an x86 host
    name = _known(specs.get(ACCELERATOR_NAME))
    if token and name and token not in str(name).lower().replace(" ", ""):
        return None
    return hw if hw in hardware_catalog() else None


def _aws_size_vcpus(size: str) -> int | None:
    """medium 1, large 2, xlarge 4, Nxlarge 4N: the usual AWS vCPU ladder (specs win)."""
    if size == "medium":
        return 1
    if size == "large":
        return 2
    m = re.fullmatch(r"(\d*)xlarge", size)
    if m:
        return 4 * int(m.group(1) or 1)
    return None


def aws_hardware(instance_type: str, specs: Mapping) -> str | None:
    family, _, size = instance_type.partition(".")
    if family in AWS_ACCELERATOR_FAMILIES:
        return _accelerator_class(*AWS_ACCELERATOR_FAMILIES[family], specs)
    microarch = AWS_CPU_FAMILIES.get(family)
    if microarch is None:
        return None
    arch = "aarch64" if microarch.startswith("neoverse") else "x86_64"
    vcpus = _known(specs.get(ot.VCPUS))
    if vcpus is None:
        vcpus = _aws_size_vcpus(size)
    return _cpu_class(microarch, arch, vcpus, specs)


def azure_hardware(instance_type: str, specs: Mapping) -> str | None:
    m = _AZURE_SIZE.match(instance_type)
    if not m:
        return None
    series, n, features = m["series"], int(m["n"]), m["features"]
    acc, version = m["acc"], int(m["version"])
    # GPU sizes first: the accelerator suffix (or the series) names the device.
    if series == "NC" and acc == "T4" and version == 3:
        return _accelerator_class("nvidia-t4", None, specs)
    if series == "NV" and acc == "A10" and version == 5:
        if n < 36:
            return None  # NV6/12/18ads_A10_v5 get a fraction of one A10
        return _accelerator_class("nvidia-a10", None, specs)
    if series == "NC" and acc == "A100" and version == 4:
        return _accelerator_class("nvidia-a100-80gb", None, specs)
    if series == "ND" and acc is None and features == "asr" and version == 4:
        return _accelerator_class("nvidia-a100-40gb", None, specs)
    if series == "NC" and acc == "H100" and version == 5:
        return _accelerator_class("nvidia-h100-nvl", None, specs)
    if series == "NC" and acc is None and version == 3 and features in ("s", "rs"):
        return _accelerator_class("nvidia-v100-pcie", None, specs)
    if acc is not None or series not in ("D", "E") or version != 5:
        return None
    # D/E v5: 'a' = AMD EPYC 7763v (Milan), 'p' = Ampere Altra, neither = Xeon 8370C.
    if not set(features) <= set("adlps"):
        return None
    vcpus = _known(specs.get(ot.VCPUS))
    if vcpus is None:
        vcpus = n
    if "p" in features:
        return _cpu_class("neoverse-n1", "aarch64", vcpus, specs)
    if "a" in features:
        return _cpu_class("zen3", "x86_64", vcpus, specs)
    return _cpu_class("icx", "x86_64", vcpus, specs)


_BY_PROVIDER = {"aws": aws_hardware, "azure": azure_hardware}


def hardware_for(provider: str, instance_type: str, specs: Mapping | None = None) -> str | None:
    """The hardware class of `instance_type` at `provider`, or None where none is known."""
    mapper = _BY_PROVIDER.get(provider)
    return None if mapper is None else mapper(instance_type, dict(specs or {}))


def hardware_kind(hardware: str) -> str:
    """cpu / gpu / npu of a class the catalog knows."""
    return hardware_catalog()[hardware].kind
