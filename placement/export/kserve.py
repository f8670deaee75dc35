"""A KServe `InferenceService` per cloud pool: the alternative to the Deployment for clusters
running KServe. `modelFormat: onnx`, `protocolVersion: v2`, served by KServe's Triton runtime
from the pool's model repository (upload `triton/` and set `storageUri`).

kubernetes-validate bundles no CRD schemas, so the resource is checked against the structural
schema below: the fields written here, with the types KServe's v1beta1 CRD gives them, and no
other fields (the CRD's own schema is much larger; this is what the export relies on).
"""

from __future__ import annotations

from placement.export.kubernetes import labels, resources
from placement.export.layout import Pool

STORAGE_URI_PLACEHOLDER = "s3://REPLACE-ME/{pool}/triton"

_QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|Mi|Gi|Ki)?$"}
_RESOURCES = {"type": "object", "additionalProperties": False, "properties": {
    "requests": {"type": "object", "additionalProperties": _QUANTITY},
    "limits": {"type": "object", "additionalProperties": _QUANTITY}}}
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}

INFERENCE_SERVICE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": _NAME, "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["predictor"], "properties": {
            "predictor": {"type": "object", "additionalProperties": False, "required": ["model"], "properties": {
                "minReplicas": {"type": "integer", "minimum": 0},
                "maxReplicas": {"type": "integer", "minimum": 0},
                "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
                "model": {"type": "object", "additionalProperties": False,
                          "required": ["modelFormat", "storageUri"], "properties": {
                    "modelFormat": {"type": "object", "additionalProperties": False, "required": ["name"],
                                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}}},
                    "protocolVersion": {"enum": ["v1", "v2", "grpc-v2"]},
                    "runtime": {"type": "string"},
                    "storageUri": {"type": "string", "minLength": 1},
                    "resources": _RESOURCES}}}}}},
    },
}


def inference_service(pool: Pool, application: str, *, vcpus: float, memory_gib: float,
                      gpus: int) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": pool.name, "labels": labels(pool, application),
                     "annotations": {"placement/offer": pool.offer, "placement/model": pool.model}},
        "spec": {"predictor": {
            "minReplicas": pool.replicas, "maxReplicas": pool.replicas,
            "nodeSelector": {"node.kubernetes.io/instance-type": pool.instance_type,
                             "topology.kubernetes.io/region": pool.region},
            "model": {"modelFormat": {"name": "onnx"}, "protocolVersion": "v2",
                      "runtime": "kserve-tritonserver",
                      "storageUri": STORAGE_URI_PLACEHOLDER.format(pool=pool.name),
                      "resources": resources(vcpus, memory_gib, gpus)},
        }},
    }


def validate(doc: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(INFERENCE_SERVICE_SCHEMA)
    return [f"InferenceService {'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
            for e in validator.iter_errors(doc)]
