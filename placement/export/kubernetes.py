"""Kubernetes manifests for one cloud pool: a Deployment running Triton over the pool's model
repository (baked into an image by the pool's Dockerfile) and a Service in front of it.

The Deployment has the plan's replica count and is pinned to the pool's instance type and region
(`node.kubernetes.io/instance-type`, `topology.kubernetes.io/region`); its requests are the
instance's vCPUs and memory less headroom for the kubelet and system daemons, and a GPU pool
asks for its GPUs. Validated offline against the Kubernetes OpenAPI schemas that the
`kubernetes-validate` package bundles.
"""

from __future__ import annotations

import math

import yaml

from placement.export.layout import Pool

KUBERNETES_VERSION = "1.30"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
CPU_SHARE, MEMORY_SHARE = 0.85, 0.80   # of the instance, left to the pod
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002


def pool_image(pool: Pool, tag: str) -> str:
    """The image the pool's Dockerfile builds (push it to your registry and set it here)."""
    return f"placement/{pool.name}:{tag}"


def resources(vcpus: float, memory_gib: float, gpus: int) -> dict:
    cpu_m = max(100, int(math.floor(vcpus * 1000 * CPU_SHARE)))
    mem_mi = max(128, int(math.floor(memory_gib * 1024 * MEMORY_SHARE)))
    requests = {"cpu": f"{cpu_m}m", "memory": f"{mem_mi}Mi"}
    limits = {"memory": f"{mem_mi}Mi"}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits}


def labels(pool: Pool, application: str) -> dict:
    from placement.export.layout import dns_name

    return {"app.kubernetes.io/name": pool.name, "app.kubernetes.io/part-of": dns_name(application),
            "app.kubernetes.io/managed-by": "placement-export"}


def deployment(pool: Pool, application: str, *, vcpus: float, memory_gib: float, gpus: int,
               image: str) -> dict:
    sel = {"app.kubernetes.io/name": pool.name}
    container = {
        "name": "triton", "image": image,
        "args": ["tritonserver", "--model-repository=/models", "--strict-model-config=true"],
        "ports": [{"name": "http", "containerPort": HTTP_PORT},
                  {"name": "grpc", "containerPort": GRPC_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": resources(vcpus, memory_gib, gpus),
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"},
                           "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"},
                          "initialDelaySeconds": 30, "periodSeconds": 10},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": pool.name, "labels": labels(pool, application),
                     "annotations": {"placement/offer": pool.offer, "placement/model": pool.model,
                                     "placement/segments": ",".join(pool.segments)}},
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": sel},
            "template": {
                "metadata": {"labels": {**labels(pool, application), **sel}},
                "spec": {
                    "nodeSelector": {"node.kubernetes.io/instance-type": pool.instance_type,
                                     "topology.kubernetes.io/region": pool.region},
                    "containers": [container],
                },
            },
        },
    }


def service(pool: Pool, application: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": pool.name, "labels": labels(pool, application)},
        "spec": {"selector": {"app.kubernetes.io/name": pool.name},
                 "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"},
                           {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"}]},
    }


def dump(documents: list[dict]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)


def validate(text: str, version: str = KUBERNETES_VERSION) -> list[str]:
    """Problems of every document in a manifest file, per the bundled OpenAPI schemas (strict:
    an unknown field is a problem)."""
    import kubernetes_validate

    problems = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {exc.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
            problems.append(f"{doc.get('kind')}: no schema ({exc})")
    return problems
