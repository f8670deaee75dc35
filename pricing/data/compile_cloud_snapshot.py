"""How `cloud_snapshot.csv` was compiled (provenance; not shipped, not imported at run time).

Every on-demand price below was read from the public SkyPilot VM catalogs, which are
regenerated from the providers' public price lists (AWS Price List API, Azure Retail Prices
API), and cross-checked with the catalog rows copied into shared/data/catalog-snapshots:

* AWS: skypilot-catalog `catalogs/v8/aws/vms.csv` at commit 00148f2a (the same file the
  shared subset comes from); spot = median of the per-zone "last seen" spot prices of the
  region's regular availability zones (Local Zones such as use1-atl2 or usw2-lax1 excluded).
* Azure: skypilot-catalog `catalogs/v6/azure/vms.csv` at commit 098741e7 (US regions only);
  spot = that catalog's spot meter price for the region.

A spot price equal to (or above) on-demand means "no spot capacity seen" and is left empty;
so is a spot price where not every zone row of the region was read.

Reserved prices (AWS GPU and Inferentia rows only; Linux, shared tenancy, Standard, No Upfront)
were read from the instances.vantage.sh data set as vendored in tsaol/aws-gpu (see
AWS_RESERVED); every other row's reserved columns stay empty. None is derived from on-demand.

A few sizes were not read row by row but derived from a sibling size of the same family,
because AWS prices these families linearly per size (checked in the catalog on the sizes
named); those rows say so in `price_source` and have no spot price.

Run from the repository root (needs the shared/ checkout for the 15 subset types):
    python pricing/data/compile_cloud_snapshot.py

This is how the shipped snapshot was made. `python -m pricing.build_snapshot --live` rebuilds
it instead from the providers' APIs through the same code as `placement prices refresh`
(then with reserved prices for every row the APIs price). Both assign hardware classes
through `pricing.hardware_map.hardware_for`; `_row` checks the table below against it.
"""

from __future__ import annotations

import importlib
import statistics
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ot = importlib.import_module("pricing.table")  # importable once the repo root is on the path
hardware_for = importlib.import_module("pricing.hardware_map").hardware_for

DATE = "2026-11-25"
SHARED = ROOT / ".." / "shared" / "data" / "catalog-snapshots"
AWS_CATALOG = "SkyPilot catalog v8 aws/vms.csv @00148f2a"
AZURE_CATALOG = "SkyPilot catalog v6 azure/vms.csv @098741e7"
AWS_SOURCE = (f"snapshot: AWS public on-demand list price (Linux, shared tenancy) as in the "
              f"{AWS_CATALOG}")
AZURE_SOURCE = (f"snapshot: Azure public pay-as-you-go list price (Linux) as in the "
                f"{AZURE_CATALOG}")

# type: (vcpus, memory_gib, accelerator, accelerator_count, arch, hardware class)
AWS_TYPES = {
    "c7a.medium": (1, 2, None, 0, "x86_64", "x86-zen4-1c"),
    "c7a.large": (2, 4, None, 0, "x86_64", "x86-zen4-2c"),
    "c7a.xlarge": (4, 8, None, 0, "x86_64", "x86-zen4-4c"),
    "c7a.2xlarge": (8, 16, None, 0, "x86_64", "x86-zen4-8c"),
    "c7a.4xlarge": (16, 32, None, 0, "x86_64", "x86-zen4-16c"),
    "m7a.large": (2, 8, None, 0, "x86_64", "x86-zen4-2c"),
    "m7a.xlarge": (4, 16, None, 0, "x86_64", "x86-zen4-4c"),
    "m7a.2xlarge": (8, 32, None, 0, "x86_64", "x86-zen4-8c"),
    "c7g.large": (2, 4, None, 0, "aarch64", "arm-neoverse-v1-2c"),
    "c7g.xlarge": (4, 8, None, 0, "aarch64", "arm-neoverse-v1-4c"),
    "c7g.2xlarge": (8, 16, None, 0, "aarch64", "arm-neoverse-v1-8c"),
    "c7g.4xlarge": (16, 32, None, 0, "aarch64", "arm-neoverse-v1-16c"),
    "c7g.8xlarge": (32, 64, None, 0, "aarch64", "arm-neoverse-v1-32c"),
    "m7g.large": (2, 8, None, 0, "aarch64", "arm-neoverse-v1-2c"),
    "m7g.xlarge": (4, 16, None, 0, "aarch64", "arm-neoverse-v1-4c"),
    "m7g.2xlarge": (8, 32, None, 0, "aarch64", "arm-neoverse-v1-8c"),
    "c8g.large": (2, 4, None, 0, "aarch64", "arm-neoverse-v2-2c"),
    "c8g.xlarge": (4, 8, None, 0, "aarch64", "arm-neoverse-v2-4c"),
    "c8g.2xlarge": (8, 16, None, 0, "aarch64", "arm-neoverse-v2-8c"),
    "c7i.large": (2, 4, None, 0, "x86_64", "x86-spr-2c"),
    "c7i.xlarge": (4, 8, None, 0, "x86_64", "x86-spr-4c"),
    "c7i.2xlarge": (8, 16, None, 0, "x86_64", "x86-spr-8c"),
    "c7i.4xlarge": (16, 32, None, 0, "x86_64", "x86-spr-16c"),
    "m7i.large": (2, 8, None, 0, "x86_64", "x86-spr-2c"),
    "m7i.xlarge": (4, 16, None, 0, "x86_64", "x86-spr-4c"),
    "m7i.2xlarge": (8, 32, None, 0, "x86_64", "x86-spr-8c"),
    "m7i.4xlarge": (16, 64, None, 0, "x86_64", "x86-spr-16c"),
    "c6i.large": (2, 4, None, 0, "x86_64", "x86-icx-2c"),
    "c6i.xlarge": (4, 8, None, 0, "x86_64", "x86-icx-4c"),
    "c6i.2xlarge": (8, 16, None, 0, "x86_64", "x86-icx-8c"),
    "m5.large": (2, 8, None, 0, "x86_64", "x86-skx-2c"),
    "m5.xlarge": (4, 16, None, 0, "x86_64", "x86-skx-4c"),
    "m5.2xlarge": (8, 32, None, 0, "x86_64", "x86-skx-8c"),
    "g4dn.xlarge": (4, 16, "nvidia-t4", 1, "x86_64", "nvidia-t4"),
    "g4dn.4xlarge": (16, 64, "nvidia-t4", 1, "x86_64", "nvidia-t4"),
    "g5.xlarge": (4, 16, "nvidia-a10g", 1, "x86_64", "nvidia-a10g"),
    "g5.8xlarge": (32, 128, "nvidia-a10g", 1, "x86_64", "nvidia-a10g"),
    "g5.12xlarge": (48, 192, "nvidia-a10g", 4, "x86_64", "nvidia-a10g"),
    "g6.xlarge": (4, 16, "nvidia-l4", 1, "x86_64", "nvidia-l4"),
    "g6.8xlarge": (32, 128, "nvidia-l4", 1, "x86_64", "nvidia-l4"),
    "p3.2xlarge": (8, 61, "nvidia-v100", 1, "x86_64", "nvidia-v100"),
    "p4d.24xlarge": (96, 1152, "nvidia-a100-40gb", 8, "x86_64", "nvidia-a100-40gb"),
    "p5.4xlarge": (16, 256, "nvidia-h100", 1, "x86_64", "nvidia-h100"),
    "p5.48xlarge": (192, 2048, "nvidia-h100", 8, "x86_64", "nvidia-h100"),
    "inf2.xlarge": (4, 16, "aws-inferentia2", 1, "x86_64", "aws-inferentia2"),
    "inf2.24xlarge": (96, 384, "aws-inferentia2", 6, "x86_64", "aws-inferentia2"),
}

# The 15 types of the shared subset: every price and spot value comes from those rows.
AWS_FROM_SUBSET = {
    "c7g.4xlarge", "c7g.large", "c7i.large", "c8g.large", "g4dn.4xlarge", "g4dn.xlarge",
    "g5.12xlarge", "g5.xlarge", "inf2.24xlarge", "inf2.xlarge", "m5.large", "m7i.4xlarge",
    "m7i.xlarge", "p3.2xlarge", "p4d.24xlarge",
}
AWS_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")

# (type, region): (on-demand, [spot of each regular zone] or None) read from the full catalog.
AWS_READ = {
    ("c7a.medium", "us-east-1"): (0.05132, [0.0139, 0.0140, 0.0109, 0.0105, 0.0134]),
    ("c7a.medium", "us-west-2"): (0.05132, [0.0168, 0.0175, 0.0153, 0.0173]),
    ("c7a.medium", "eu-west-1"): (0.05506, [0.0273, 0.0277, 0.0281]),
    ("c7a.large", "us-east-1"): (0.10264, [0.0419, 0.0498, 0.0566, 0.0374, 0.0481]),
    ("c7a.large", "us-west-2"): (0.10264, [0.0528, 0.0621, 0.0599, 0.0342]),
    ("c7a.large", "eu-west-1"): (0.11012, [0.0592, 0.0488, 0.0525]),
    ("c7a.xlarge", "us-east-1"): (0.20528, [0.1022, 0.0788, 0.0967, 0.0675, 0.0673]),
    ("c7a.xlarge", "us-west-2"): (0.20528, [0.0699, 0.1013, 0.0894, 0.0875]),
    ("c7a.xlarge", "eu-west-1"): (0.22024, None),  # only one of three zone rows was read
    ("c7a.2xlarge", "us-east-1"): (0.41056, [0.2249, 0.2109, 0.2585, 0.2093, 0.2298]),
    ("c7a.2xlarge", "us-west-2"): (0.41056, [0.2208, 0.2272, 0.2107, 0.2195]),
    ("c7a.2xlarge", "eu-west-1"): (0.44048, [0.2357, 0.2553, 0.2579]),
    ("c7a.4xlarge", "us-east-1"): (0.82112, [0.3771, 0.3929, 0.4082, 0.3453, 0.3925]),
    ("c7a.4xlarge", "us-west-2"): (0.82112, [0.3961, 0.4213, 0.4106, 0.3625]),
    ("c7a.4xlarge", "eu-west-1"): (0.88096, [0.4721, 0.5118, 0.4750]),
    ("m7a.2xlarge", "us-east-1"): (0.46368, [0.2286, 0.2316, 0.2529, 0.2373, 0.2068]),
    ("m7a.2xlarge", "us-west-2"): (0.46368, [0.2334, 0.2066, 0.2431, 0.2139]),
    ("m7a.2xlarge", "eu-west-1"): (0.5168, [0.2679, 0.2386, 0.2508]),
    ("c7g.xlarge", "us-east-1"): (0.145, [0.0912, 0.0940, 0.0797, 0.0696, 0.0742]),
    ("c7g.xlarge", "us-west-2"): (0.145, [0.0814, 0.0795, 0.0811, 0.0695]),
    ("c7g.xlarge", "eu-west-1"): (0.155, [0.0979, 0.0955, 0.0863]),
    ("c7g.2xlarge", "us-east-1"): (0.29, [0.1320, 0.1481, 0.1483, 0.1326, 0.1472]),
    ("c7g.2xlarge", "us-west-2"): (0.29, [0.1490, 0.1441, 0.1344, 0.1112]),
    ("c7g.2xlarge", "eu-west-1"): (0.3101, [0.1547, 0.1535, 0.1584]),
    ("c7g.8xlarge", "us-east-1"): (1.16, [0.3805, 0.5130, 0.4542, 0.4858, 0.4845]),
    ("c7g.8xlarge", "us-west-2"): (1.16, [0.5569, 0.4881, 0.5539, 0.5966]),
    ("c7g.8xlarge", "eu-west-1"): (1.2403, [0.5273, 0.5339, 0.5603]),
    ("m7g.xlarge", "us-east-1"): (0.1632, [0.0894, 0.0773, 0.0654, 0.0700, 0.0758]),
    ("m7g.xlarge", "us-west-2"): (0.1632, [0.0796, 0.0732, 0.0730, 0.0786]),
    ("m7g.xlarge", "eu-west-1"): (0.1819, [0.0984, 0.0973, 0.0947]),
    ("c7i.xlarge", "us-east-1"): (0.1785, [0.0685, 0.0752, 0.0785, 0.0678, 0.0700]),
    ("c7i.xlarge", "us-west-2"): (0.1785, [0.0920, 0.1041, 0.0896, 0.0675]),
    ("c7i.xlarge", "eu-west-1"): (0.19152, [0.1026, 0.0981, 0.1175]),
    ("c6i.2xlarge", "us-east-1"): (0.34, [0.1536, 0.1641, 0.1604, 0.1590, 0.1692]),
    ("c6i.2xlarge", "us-west-2"): (0.34, [0.1443, 0.1587, 0.1504, 0.1066]),
    ("c6i.2xlarge", "eu-west-1"): (0.3648, [0.2154, 0.2331, 0.2262]),
    ("g5.8xlarge", "us-east-1"): (2.448, [0.9401, 0.9643, 0.8391, 0.9641, 0.9228]),
    ("g5.8xlarge", "us-west-2"): (2.448, [0.9241, 0.9322, 0.9206]),
    ("g5.8xlarge", "eu-west-1"): (2.73271, [1.2727, 1.2429, 1.2512]),
    # g6 is not offered in eu-west-1 (the catalog has no such rows): eu-central-1 instead.
    ("g6.xlarge", "us-east-1"): (0.8048, [0.4011, 0.3653, 0.3490, 0.3988]),
    ("g6.xlarge", "us-west-2"): (0.8048, [0.4250, 0.4537, 0.3900, 0.4541]),
    ("g6.xlarge", "eu-central-1"): (1.0064, [0.4392, 0.4424]),
    ("g6.8xlarge", "us-east-1"): (2.0144, [0.9633, 0.9393, 0.9454, 0.9995]),
    ("g6.8xlarge", "us-west-2"): (2.0144, [0.9181, 0.9567, 0.9614, 1.1655]),
    ("g6.8xlarge", "eu-central-1"): (2.519, [0.8038, 0.8243]),
    # p5 is not offered in eu-west-1: p5.4xlarge in eu-west-2, p5.48xlarge in us-east-2.
    ("p5.4xlarge", "us-east-1"): (6.88, None),  # the catalog has no spot price for it
    ("p5.4xlarge", "us-west-2"): (6.88, None),
    ("p5.4xlarge", "eu-west-2"): (8.944, None),
    ("p5.48xlarge", "us-east-2"): (55.04, None),  # two of three zone rows read
    ("p5.48xlarge", "us-west-2"): (55.04, [12.6935, 12.9785, 12.9727, 16.1301]),
}
# The us-east-1 row of p5.48xlarge was not read from the catalog; AWS lists it at the same
# price as us-east-2 and us-west-2 since the June 2025 P5 price cut.
AWS_LISTED = {("p5.48xlarge", "us-east-1"): 55.04}

# --- Reserved prices ------------------------------------------------------------------------
# AWS, Linux, shared tenancy, Standard reserved instances, No Upfront payment, as the hourly
# rate. Only read values are listed; nothing is derived from on-demand.
#
# Source: the ec2instances.info / instances.vantage.sh data set (instances.json), as vendored
# for its GPU and accelerator instance types in the public repository tsaol/aws-gpu, file
# data/gpu_instances_raw.json at commit 2d0108c7bd261c8e40493fbd35135437bd6c9099 (the
# data/g*_instances.js files generated from it in the same commit say "Last updated:
# 2025-11-30"). Each value is pricing[region]["linux"]["reserved"]["yrTerm1Standard.noUpfront"]
# (1 year) and [...]["yrTerm3Standard.noUpfront"] (3 years); "linux" is shared tenancy there
# (dedicated tenancy is the separate "dedicated" key). The entry's "ondemand" is kept here too:
# a reserved price is used only where the source's on-demand matches this snapshot's (1%).
#
# Not in the source, so left empty:
# - p5.4xlarge, p5.48xlarge: no "yrTerm1Standard.*" key in any region (1-year convertible
#   and 3-year standard only), so these rows get a 3-year price and no 1-year price.
# - p3.2xlarge: "reserved" is empty ({}) in us-east-1, us-west-2 and eu-west-1.
# - every CPU type and every Azure size: the vendored file holds GPU/accelerator types only,
#   and no Azure reservation data set was found (see docs/pricing.md, "Reserved").
RESERVED_DATE = "2025-11-30"
AWS_RESERVED_SOURCE = ("instances.vantage.sh instances.json (Linux, Standard, No Upfront) as "
                       "vendored in tsaol/aws-gpu data/gpu_instances_raw.json @2d0108c7")
# (type, region): (source on-demand, 1-year standard no-upfront or None, 3-year or None)
AWS_RESERVED = {
    ("g4dn.xlarge", "us-east-1"): (0.526, 0.331, 0.227),
    ("g4dn.xlarge", "us-west-2"): (0.526, 0.331, 0.227),
    ("g4dn.xlarge", "eu-west-1"): (0.587, 0.4, 0.253),
    ("g4dn.4xlarge", "us-east-1"): (1.204, 0.759, 0.52),
    ("g4dn.4xlarge", "us-west-2"): (1.204, 0.759, 0.52),
    ("g4dn.4xlarge", "eu-west-1"): (1.342, 0.916, 0.58),
    ("g5.xlarge", "us-east-1"): (1.006, 0.63378, 0.43459),
    ("g5.xlarge", "us-west-2"): (1.006, 0.63378, 0.43459),
    ("g5.xlarge", "eu-west-1"): (1.123, 0.70749, 0.48514),
    ("g5.8xlarge", "us-east-1"): (2.448, 1.54224, 1.05754),
    ("g5.8xlarge", "us-west-2"): (2.448, 1.54224, 1.05754),
    ("g5.8xlarge", "eu-west-1"): (2.73271, 1.72161, 1.18053),
    ("g5.12xlarge", "us-east-1"): (5.672, 3.57336, 2.4503),
    ("g5.12xlarge", "us-west-2"): (5.672, 3.57336, 2.4503),
    ("g5.12xlarge", "eu-west-1"): (6.33167, 3.98895, 2.73528),
    ("g6.xlarge", "us-east-1"): (0.8048, 0.52392, 0.3694),
    ("g6.xlarge", "us-west-2"): (0.8048, 0.52392, 0.3694),
    ("g6.xlarge", "eu-central-1"): (1.0064, 0.65517, 0.46194),
    ("g6.8xlarge", "us-east-1"): (2.0144, 1.31137, 0.92461),
    ("g6.8xlarge", "us-west-2"): (2.0144, 1.31137, 0.92461),
    ("g6.8xlarge", "eu-central-1"): (2.519, 1.63987, 1.15622),
    ("inf2.xlarge", "us-east-1"): (0.7582, 0.47767, 0.32754),
    ("inf2.xlarge", "us-west-2"): (0.7582, 0.47767, 0.32754),
    ("inf2.xlarge", "eu-west-1"): (0.94775, 0.59708, 0.40943),
    ("inf2.24xlarge", "us-east-1"): (6.49063, 4.0891, 2.80395),
    ("inf2.24xlarge", "us-west-2"): (6.49063, 4.0891, 2.80395),
    ("inf2.24xlarge", "eu-west-1"): (8.11329, 5.11137, 3.50494),
    ("p4d.24xlarge", "us-east-1"): (21.957642, 13.921094, 9.374219),
    ("p4d.24xlarge", "us-west-2"): (21.95764, 13.921092, 9.374218),
    ("p4d.24xlarge", "eu-west-1"): (23.71569, 15.08188, 10.14781),
    ("p5.4xlarge", "us-east-1"): (6.88, None, 2.97216),
    ("p5.4xlarge", "us-west-2"): (6.88, None, 2.97216),
    ("p5.4xlarge", "eu-west-2"): (8.944, None, 3.86381),
    ("p5.48xlarge", "us-east-1"): (55.04, None, 23.77728),
    ("p5.48xlarge", "us-east-2"): (55.04, None, 23.77728),
    ("p5.48xlarge", "us-west-2"): (55.04, None, 23.77728),
}

# Derived sizes: (type, base type, factor, evidence of linear pricing in the catalog).
AWS_DERIVED = [
    ("c7i.2xlarge", "c7i.xlarge", 2, "c7i.large/xlarge/metal-24xl/metal-48xl"),
    ("c7i.4xlarge", "c7i.xlarge", 4, "c7i.large/xlarge/metal-24xl/metal-48xl"),
    ("m7i.large", "m7i.xlarge", 0.5, "m7i.xlarge/4xlarge"),
    ("m7i.2xlarge", "m7i.xlarge", 2, "m7i.xlarge/4xlarge"),
    ("c6i.large", "c6i.2xlarge", 0.25, "c6i.2xlarge/16xlarge/24xlarge/32xlarge"),
    ("c6i.xlarge", "c6i.2xlarge", 0.5, "c6i.2xlarge/16xlarge/24xlarge/32xlarge"),
    ("m7a.large", "m7a.2xlarge", 0.25, "m7a.2xlarge/4xlarge/12xlarge/24xlarge"),
    ("m7a.xlarge", "m7a.2xlarge", 0.5, "m7a.2xlarge/4xlarge/12xlarge/24xlarge"),
    ("m7g.large", "m7g.xlarge", 0.5, "c7g.large..8xlarge (same Graviton3 price steps)"),
    ("m7g.2xlarge", "m7g.xlarge", 2, "c7g.large..8xlarge (same Graviton3 price steps)"),
    ("c8g.xlarge", "c8g.large", 2, "c7g.large..8xlarge (same Graviton price steps)"),
    ("c8g.2xlarge", "c8g.large", 4, "c7g.large..8xlarge (same Graviton price steps)"),
    ("m5.xlarge", "m5.large", 2, "AWS m5 list: 0.096/0.192/0.384/0.768 in us-east-1"),
    ("m5.2xlarge", "m5.large", 4, "AWS m5 list: 0.096/0.192/0.384/0.768 in us-east-1"),
]

AZURE_TYPES = {
    "Standard_D2s_v5": (2, 8, None, 0, "x86_64", "x86-icx-2c"),
    "Standard_D4s_v5": (4, 16, None, 0, "x86_64", "x86-icx-4c"),
    "Standard_D8s_v5": (8, 32, None, 0, "x86_64", "x86-icx-8c"),
    "Standard_D48s_v5": (48, 192, None, 0, "x86_64", "x86-icx-48c"),
    "Standard_D64s_v5": (64, 256, None, 0, "x86_64", "x86-icx-64c"),
    "Standard_D2_v5": (2, 8, None, 0, "x86_64", "x86-icx-2c"),
    "Standard_D2ds_v5": (2, 8, None, 0, "x86_64", "x86-icx-2c"),
    "Standard_D4ds_v5": (4, 16, None, 0, "x86_64", "x86-icx-4c"),
    "Standard_D8ds_v5": (8, 32, None, 0, "x86_64", "x86-icx-8c"),
    "Standard_D32ds_v5": (32, 128, None, 0, "x86_64", "x86-icx-32c"),
    "Standard_D2ls_v5": (2, 4, None, 0, "x86_64", "x86-icx-2c"),
    "Standard_D4ls_v5": (4, 8, None, 0, "x86_64", "x86-icx-4c"),
    "Standard_D8ls_v5": (8, 16, None, 0, "x86_64", "x86-icx-8c"),
    "Standard_D2as_v5": (2, 8, None, 0, "x86_64", "x86-zen3-2c"),
    "Standard_D4as_v5": (4, 16, None, 0, "x86_64", "x86-zen3-4c"),
    "Standard_D8as_v5": (8, 32, None, 0, "x86_64", "x86-zen3-8c"),
    "Standard_D32as_v5": (32, 128, None, 0, "x86_64", "x86-zen3-32c"),
    "Standard_D4ads_v5": (4, 16, None, 0, "x86_64", "x86-zen3-4c"),
    "Standard_D2ps_v5": (2, 8, None, 0, "aarch64", "arm-neoverse-n1-2c"),
    "Standard_D4ps_v5": (4, 16, None, 0, "aarch64", "arm-neoverse-n1-4c"),
    "Standard_D8ps_v5": (8, 32, None, 0, "aarch64", "arm-neoverse-n1-8c"),
    "Standard_D48ps_v5": (48, 192, None, 0, "aarch64", "arm-neoverse-n1-48c"),
    "Standard_D2pls_v5": (2, 4, None, 0, "aarch64", "arm-neoverse-n1-2c"),
    "Standard_D4pls_v5": (4, 8, None, 0, "aarch64", "arm-neoverse-n1-4c"),
    "Standard_D8pls_v5": (8, 16, None, 0, "aarch64", "arm-neoverse-n1-8c"),
    "Standard_D2pds_v5": (2, 8, None, 0, "aarch64", "arm-neoverse-n1-2c"),
    "Standard_NC4as_T4_v3": (4, 28, "nvidia-t4", 1, "x86_64", "nvidia-t4"),
    "Standard_NC8as_T4_v3": (8, 56, "nvidia-t4", 1, "x86_64", "nvidia-t4"),
    "Standard_NC16as_T4_v3": (16, 110, "nvidia-t4", 1, "x86_64", "nvidia-t4"),
    "Standard_NC64as_T4_v3": (64, 440, "nvidia-t4", 4, "x86_64", "nvidia-t4"),
    "Standard_NV36ads_A10_v5": (36, 440, "nvidia-a10", 1, "x86_64", "nvidia-a10"),
    "Standard_NV36adms_A10_v5": (36, 880, "nvidia-a10", 1, "x86_64", "nvidia-a10"),
    "Standard_NV72ads_A10_v5": (72, 880, "nvidia-a10", 2, "x86_64", "nvidia-a10"),
    "Standard_NC24ads_A100_v4": (24, 220, "nvidia-a100-80gb", 1, "x86_64", "nvidia-a100-80gb"),
    "Standard_NC48ads_A100_v4": (48, 440, "nvidia-a100-80gb", 2, "x86_64", "nvidia-a100-80gb"),
    "Standard_NC96ads_A100_v4": (96, 880, "nvidia-a100-80gb", 4, "x86_64", "nvidia-a100-80gb"),
    "Standard_ND96asr_v4": (96, 900, "nvidia-a100-40gb", 8, "x86_64", "nvidia-a100-40gb"),
    "Standard_NC40ads_H100_v5": (40, 320, "nvidia-h100-nvl", 1, "x86_64", "nvidia-h100-nvl"),
    "Standard_NC80adis_H100_v5": (80, 640, "nvidia-h100-nvl", 2, "x86_64", "nvidia-h100-nvl"),
    "Standard_NC6s_v3": (6, 112, "nvidia-v100-pcie", 1, "x86_64", "nvidia-v100-pcie"),
}

# (size, region): (pay-as-you-go, spot or None), read from the Azure catalog.
E, W, S, W3 = "eastus", "westus2", "southcentralus", "westus3"
AZURE_READ = {
    ("Standard_D2s_v5", E): (0.096, 0.01056), ("Standard_D2s_v5", W): (0.096, 0.01248),
    ("Standard_D2s_v5", S): (0.115, 0.013708),
    ("Standard_D4s_v5", E): (0.192, 0.02112), ("Standard_D4s_v5", W): (0.192, 0.02496),
    ("Standard_D4s_v5", S): (0.23, 0.027416),
    ("Standard_D8s_v5", E): (0.384, 0.04224), ("Standard_D8s_v5", W): (0.384, 0.04992),
    ("Standard_D8s_v5", S): (0.461, 0.054951),
    ("Standard_D48s_v5", E): (2.304, 0.25344), ("Standard_D48s_v5", W): (2.304, 0.29952),
    ("Standard_D48s_v5", S): (2.765, 0.329588),
    ("Standard_D64s_v5", E): (3.072, 0.33792), ("Standard_D64s_v5", W): (3.072, 0.39936),
    ("Standard_D64s_v5", S): (3.686, 0.439371),
    ("Standard_D2_v5", E): (0.096, 0.01056), ("Standard_D2_v5", W): (0.096, 0.01248),
    ("Standard_D2_v5", S): (0.115, 0.013708),
    ("Standard_D2ds_v5", E): (0.113, 0.01243), ("Standard_D2ds_v5", W): (0.113, 0.01469),
    ("Standard_D2ds_v5", S): (0.136, 0.016211),
    ("Standard_D4ds_v5", E): (0.226, 0.02486), ("Standard_D4ds_v5", W): (0.226, 0.02938),
    ("Standard_D4ds_v5", S): (0.271, 0.032303),
    ("Standard_D8ds_v5", E): (0.452, 0.04972), ("Standard_D8ds_v5", W): (0.452, 0.05876),
    ("Standard_D8ds_v5", S): (0.542, 0.064606),
    ("Standard_D32ds_v5", E): (1.808, 0.19888), ("Standard_D32ds_v5", W): (1.808, 0.23504),
    ("Standard_D32ds_v5", S): (2.17, 0.258664),
    ("Standard_D2ls_v5", E): (0.085, 0.00935), ("Standard_D2ls_v5", W): (0.085, 0.01105),
    ("Standard_D2ls_v5", S): (0.102, 0.012158),
    ("Standard_D4ls_v5", E): (0.17, 0.0187), ("Standard_D4ls_v5", W): (0.17, 0.0221),
    ("Standard_D4ls_v5", S): (0.204, 0.024317),
    ("Standard_D8ls_v5", E): (0.34, 0.0374), ("Standard_D8ls_v5", W): (0.34, 0.0442),
    ("Standard_D8ls_v5", S): (0.408, 0.048634),
    ("Standard_D2as_v5", E): (0.086, 0.00946), ("Standard_D2as_v5", W): (0.086, 0.01118),
    ("Standard_D2as_v5", S): (0.103, 0.01133),
    ("Standard_D4as_v5", E): (0.172, 0.01892), ("Standard_D4as_v5", W): (0.172, 0.02236),
    ("Standard_D4as_v5", S): (0.206, 0.02266),
    ("Standard_D8as_v5", E): (0.344, 0.03784), ("Standard_D8as_v5", W): (0.344, 0.04472),
    ("Standard_D8as_v5", S): (0.413, 0.04543),
    ("Standard_D32as_v5", E): (1.376, 0.15136), ("Standard_D32as_v5", W): (1.376, 0.17888),
    ("Standard_D32as_v5", S): (1.651, 0.18161),
    ("Standard_D4ads_v5", E): (0.206, 0.02266), ("Standard_D4ads_v5", W): (0.206, 0.02678),
    ("Standard_D4ads_v5", S): (0.247, 0.02717),
    ("Standard_D2ps_v5", E): (0.077, 0.00847), ("Standard_D2ps_v5", W): (0.077, 0.00847),
    ("Standard_D2ps_v5", S): (0.0924, 0.010164),
    ("Standard_D4ps_v5", E): (0.154, 0.01694), ("Standard_D4ps_v5", W): (0.154, 0.01694),
    ("Standard_D4ps_v5", S): (0.185, 0.02035),
    ("Standard_D8ps_v5", E): (0.308, 0.03388), ("Standard_D8ps_v5", W): (0.308, 0.03388),
    ("Standard_D8ps_v5", S): (0.37, 0.0407),
    ("Standard_D48ps_v5", E): (1.848, 0.20328), ("Standard_D48ps_v5", W): (1.848, 0.20328),
    ("Standard_D48ps_v5", S): (2.218, 0.24398),
    ("Standard_D2pls_v5", E): (0.068, 0.00748), ("Standard_D2pls_v5", W): (0.068, 0.00748),
    ("Standard_D2pls_v5", S): (0.0816, 0.008976),
    ("Standard_D4pls_v5", E): (0.136, 0.01496), ("Standard_D4pls_v5", W): (0.136, 0.01496),
    ("Standard_D4pls_v5", S): (0.163, 0.01793),
    ("Standard_D8pls_v5", E): (0.272, 0.02992), ("Standard_D8pls_v5", W): (0.272, 0.02992),
    ("Standard_D8pls_v5", S): (0.326, 0.03586),
    ("Standard_D2pds_v5", E): (0.0904, 0.009944), ("Standard_D2pds_v5", W): (0.0904, 0.009944),
    ("Standard_D2pds_v5", S): (0.108, 0.01188),
    ("Standard_NC4as_T4_v3", E): (0.526, 0.062699), ("Standard_NC4as_T4_v3", W): (0.526, 0.061595),
    ("Standard_NC4as_T4_v3", S): (0.631, 0.06941),
    ("Standard_NC8as_T4_v3", E): (0.752, 0.089638), ("Standard_NC8as_T4_v3", W): (0.752, 0.088059),
    ("Standard_NC8as_T4_v3", S): (0.902, 0.09922),
    ("Standard_NC16as_T4_v3", E): (1.204, 0.143517),
    ("Standard_NC16as_T4_v3", W): (1.204, 0.140988),
    ("Standard_NC16as_T4_v3", S): (1.445, 0.15895),
    ("Standard_NC64as_T4_v3", E): (4.352, 0.518758),
    ("Standard_NC64as_T4_v3", W): (4.352, 0.509619),
    ("Standard_NC64as_T4_v3", S): (5.222, 0.57442),
    ("Standard_NV36ads_A10_v5", E): (3.2, 0.8), ("Standard_NV36ads_A10_v5", W): (3.2, 0.8),
    ("Standard_NV36ads_A10_v5", S): (3.84, 0.96),
    ("Standard_NV36adms_A10_v5", E): (4.52, 1.13), ("Standard_NV36adms_A10_v5", W): (4.52, 1.13),
    ("Standard_NV36adms_A10_v5", S): (5.424, 1.356),
    ("Standard_NV72ads_A10_v5", E): (6.52, 1.63), ("Standard_NV72ads_A10_v5", W): (6.52, 1.63),
    ("Standard_NV72ads_A10_v5", S): (7.824, 1.956),
    ("Standard_NC24ads_A100_v4", E): (3.673, 0.444433),
    ("Standard_NC24ads_A100_v4", W): (3.673, 0.615962),
    ("Standard_NC24ads_A100_v4", S): (4.408, 0.57304),
    ("Standard_NC48ads_A100_v4", E): (7.346, 0.888866),
    ("Standard_NC48ads_A100_v4", W): (7.346, 1.231924),
    ("Standard_NC48ads_A100_v4", S): (8.815, 1.14595),
    ("Standard_NC96ads_A100_v4", E): (14.692, 1.777732),
    ("Standard_NC96ads_A100_v4", W): (14.692, 2.463848),
    ("Standard_NC96ads_A100_v4", S): (17.63, 2.2919),
    ("Standard_ND96asr_v4", E): (27.197, 2.99167), ("Standard_ND96asr_v4", W): (27.197, 2.99167),
    ("Standard_ND96asr_v4", S): (32.63, 3.5893),
    # NC H100 v5 is not offered in westus2: westus3 instead. Its catalog spot equals
    # pay-as-you-go (no spot capacity), so it is left empty.
    ("Standard_NC40ads_H100_v5", E): (6.98, None), ("Standard_NC40ads_H100_v5", S): (8.38, None),
    ("Standard_NC40ads_H100_v5", W3): (6.98, None),
    ("Standard_NC80adis_H100_v5", E): (13.96, None),
    ("Standard_NC80adis_H100_v5", S): (16.76, None),
    ("Standard_NC80adis_H100_v5", W3): (13.96, None),
    ("Standard_NC6s_v3", E): (3.06, 0.3978), ("Standard_NC6s_v3", W): (3.06, 0.35343),
    ("Standard_NC6s_v3", S): (3.366, 0.388773),
}


def _regular_zone(zone: str) -> bool:
    """use1-az1 is a regular zone; use1-atl2-az1 (a Local Zone) is not."""
    return zone.count("-") == 1


def _spot(on_demand: float, zone_prices) -> float:
    if not zone_prices:
        return float("nan")
    spot = float(statistics.median(zone_prices))
    return spot if spot < on_demand else float("nan")


def _row(provider, region, itype, spec, hourly, spot, source):
    vcpus, mem, acc, count, arch, hw = spec
    # The class table above must agree with the mapping the live fetchers use.
    mapped = hardware_for(provider, itype, {ot.VCPUS: vcpus, ot.ARCH: arch,
                                            ot.ACCELERATOR_COUNT: count})
    if mapped != hw:
        raise ValueError(f"{provider} {itype}: class {hw} here, {mapped} in pricing.hardware_map")
    return {
        ot.OFFER: ot.cloud_offer_id(provider, region, itype), ot.TIER: "cloud",
        ot.PROVIDER: provider, ot.REGION: region, ot.INSTANCE_TYPE: itype, ot.HARDWARE: hw,
        ot.VCPUS: vcpus, ot.MEMORY_GIB: mem, ot.ACCELERATOR: acc, ot.ACCELERATOR_COUNT: count,
        ot.ARCH: arch, ot.HOURLY_USD: hourly, ot.SPOT_HOURLY_USD: round(spot, 6),
        ot.RESERVED_1Y_HOURLY_USD: float("nan"), ot.RESERVED_3Y_HOURLY_USD: float("nan"),
        ot.UNIT_USD: float("nan"), ot.POWER_W: float("nan"), ot.PRICE_SOURCE: source,
        ot.PRICE_DATE: DATE,
    }


def aws_rows() -> list[dict]:
    subset = pd.read_csv(SHARED / "aws" / "vms.csv")
    subset = subset[subset["AvailabilityZone"].map(_regular_zone)]
    read = dict(AWS_READ)
    for (itype, region), grp in subset.groupby(["InstanceType", "Region"]):
        if itype in AWS_FROM_SUBSET and region in AWS_REGIONS:
            read[itype, region] = (float(grp["Price"].iloc[0]),
                                   [float(p) for p in grp["SpotPrice"].dropna()])
    spot_note = "; spot: median of the region's zone rows there"
    rows = []
    for (itype, region), (hourly, zones) in sorted(read.items()):
        rows.append(_row("aws", region, itype, AWS_TYPES[itype], hourly, _spot(hourly, zones),
                         AWS_SOURCE + (spot_note if zones else "")))
    for (itype, region), hourly in AWS_LISTED.items():
        rows.append(_row("aws", region, itype, AWS_TYPES[itype], hourly, float("nan"),
                         "snapshot: AWS public on-demand list price (Linux, shared tenancy); "
                         "this row not read from the catalog, equal to its us-east-2 and "
                         "us-west-2 rows"))
    for itype, base, factor, evidence in AWS_DERIVED:
        for region in AWS_REGIONS:
            hourly = round(read[base, region][0] * factor, 5)
            rows.append(_row("aws", region, itype, AWS_TYPES[itype], hourly, float("nan"),
                             f"snapshot: AWS public on-demand list price, derived as {factor:g} x "
                             f"{base} of the {AWS_CATALOG} (linear per size; checked on "
                             f"{evidence})"))
    return rows


def azure_rows() -> list[dict]:
    rows = []
    for (size, region), (hourly, spot) in sorted(AZURE_READ.items()):
        has_spot = spot is not None and spot < hourly
        rows.append(_row("azure", region, size, AZURE_TYPES[size], hourly,
                         spot if has_spot else float("nan"),
                         AZURE_SOURCE + ("; spot: its spot meter price" if has_spot else "")))
    return rows


def _checked_reserved(itype, region, hourly):
    """The (1y, 3y) reserved prices read for an offer, or None. A value is dropped (with a
    message) where the source's on-demand differs from the snapshot's by more than 1%, where a
    reserved price is not below on-demand, or where the 3-year price is not below the 1-year."""
    if (itype, region) not in AWS_RESERVED:
        return None
    source_hourly, r1, r3 = AWS_RESERVED[itype, region]
    where = f"aws {region} {itype}"
    if abs(source_hourly - hourly) > 0.01 * hourly:
        print(f"dropped reserved prices of {where}: source on-demand {source_hourly} "
              f"is not the snapshot's {hourly}")
        return None
    if r1 is not None and not r1 < hourly:
        print(f"dropped 1-year reserved price of {where}: {r1} not below on-demand {hourly}")
        r1 = None
    if r3 is not None and not (r3 < hourly and (r1 is None or r3 < r1)):
        print(f"dropped 3-year reserved price of {where}: {r3} not below on-demand/1-year")
        r3 = None
    return None if r1 is None and r3 is None else (r1, r3)


def with_reserved(rows: list[dict]) -> list[dict]:
    """Fill the reserved columns of the AWS rows that AWS_RESERVED covers and say so in
    price_source; every other column stays as compiled."""
    for row in rows:
        if row[ot.PROVIDER] != "aws":
            continue
        found = _checked_reserved(row[ot.INSTANCE_TYPE], row[ot.REGION], row[ot.HOURLY_USD])
        if found is None:
            continue
        r1, r3 = found
        terms = " and ".join(t for t, v in (("1y", r1), ("3y", r3)) if v is not None)
        row[ot.RESERVED_1Y_HOURLY_USD] = float("nan") if r1 is None else r1
        row[ot.RESERVED_3Y_HOURLY_USD] = float("nan") if r3 is None else r3
        row[ot.PRICE_SOURCE] += (f"; reserved ({terms}): {AWS_RESERVED_SOURCE} "
                                 f"({RESERVED_DATE})")
    return rows


def main() -> None:
    df = pd.DataFrame(with_reserved(aws_rows() + azure_rows()), columns=ot.OFFER_COLUMNS)
    df = df.sort_values([ot.PROVIDER, ot.INSTANCE_TYPE, ot.REGION]).reset_index(drop=True)
    ot.validate_offer_table(df, origin="compiled snapshot")
    out = Path(__file__).with_name("cloud_snapshot.csv")
    df.to_csv(out, index=False)
    print(f"wrote {out} ({len(df)} offers)")


if __name__ == "__main__":
    main()
