"""`placement export`: a plan turned into a bundle a deployer ships with ordinary tools.

Modules, one job each: `layout` (what a plan deploys: units, pools, sites), `artifacts` (the ONNX
piece and its runtime files), `tvm_build` (TVM libraries per target), `kubernetes`, `kserve`,
`triton`, `edge` (+ `edge_runner`, shipped into each site folder), `manifest` (manifest.json and its
schema) and `bundle` (writing and checking a bundle).
"""

from placement.export.bundle import check_bundle, export_bundle, load_plan, read_manifest
from placement.export.errors import ExportError
from placement.export.manifest import Manifest, manifest_json_schema

__all__ = ["ExportError", "Manifest", "check_bundle", "export_bundle", "load_plan",
           "manifest_json_schema", "read_manifest"]
