"""The app's inputs and the spec: the widgets' values and choices taken from a spec and its
offer table, and the widgets' values turned back into the Workspace's `Overrides`.

A mixin of `AppState` (which owns the input params, `INPUTS`, `workspace` and `publish`)."""

from __future__ import annotations

import pandas as pd

from placement import api
from placement.spec import CloudCandidate


class SpecInputs:
    def _set_inputs_from(self, ws: api.Workspace) -> None:
        spec = ws.spec
        offers = ws.offers_table
        edge = offers[offers["tier"] == "edge"]
        cloud = offers[offers["tier"] == "cloud"]
        providers = [c.provider for c in spec.hardware.cloud]
        regions = sorted({r for c in spec.hardware.cloud for r in c.regions})
        types = sorted(self._types_of(spec.hardware.cloud, cloud))
        objects = {"edge_devices": sorted(set(edge["instance_type"]) | set(spec.hardware.edge)),
                   "providers": sorted(set(cloud["provider"])), "regions": sorted(set(cloud["region"])),
                   "instance_types": self._type_objects(providers, regions, cloud, types)}
        values = dict(
            slo_ms=spec.slo.latency_ms, percentile=spec.slo.percentile,
            min_site_share=spec.slo.min_site_share, budget_usd=spec.monthly_budget_usd,
            sites=spec.load.sites, rate_per_site_rps=spec.load.rate_per_site_rps,
            uplink_mbps=spec.network.uplink_mbps, downlink_mbps=spec.network.downlink_mbps,
            rtt_ms=dict(spec.network.rtt_ms), pricing_model=spec.hardware.pricing_model,
            discount_percent={p: float(spec.hardware.discount_percent.get(p, 0.0))
                              for p in sorted(set(cloud["provider"]))},
            objective="cost", estimated_latency=spec.solver.estimated_latency,
            edge_devices=list(spec.hardware.edge), providers=providers, regions=regions,
            instance_types=types)
        self._baseline = {name: values[name] for name in self.INPUTS}

        def show() -> None:
            self._quiet = True
            try:
                for name, found in objects.items():
                    self.param[name].objects = found
                self.param.update(**values)
            finally:
                self._quiet = False

        self.publish(show)

    @staticmethod
    def _types_of(candidates, cloud: pd.DataFrame) -> set[str]:
        types: set[str] = set()
        for c in candidates:
            if c.instance_types is not None:
                types |= set(c.instance_types)
            else:
                rows = cloud[(cloud["provider"] == c.provider) & cloud["region"].isin(c.regions)]
                types |= set(rows["instance_type"])
        return types

    @staticmethod
    def _type_objects(providers, regions, cloud: pd.DataFrame, keep=()) -> list[str]:
        rows = cloud[cloud["provider"].isin(providers) & cloud["region"].isin(regions)]
        return sorted(set(rows["instance_type"]) | set(keep))

    def _cloud_scope_changed(self, *events) -> None:
        if self._quiet or self.workspace is None:
            return
        cloud = self.workspace.offers_table
        cloud = cloud[cloud["tier"] == "cloud"]
        objects = self._type_objects(self.providers, self.regions, cloud)
        self.param.instance_types.objects = objects
        kept = [t for t in self.instance_types if t in objects]
        if kept != list(self.instance_types):
            self.instance_types = kept

    def _value(self, name):
        value = getattr(self, name)
        return list(value) if isinstance(value, list) else (dict(value) if isinstance(value, dict) else value)

    def overrides(self) -> api.Overrides:
        """The inputs that differ from the spec, as the Workspace's `Overrides`."""
        changed = {name for name in self.INPUTS if self._value(name) != self._baseline.get(name)}
        kw: dict = {}
        simple = ("slo_ms", "percentile", "min_site_share", "budget_usd", "sites", "rate_per_site_rps",
                  "uplink_mbps", "downlink_mbps", "pricing_model", "estimated_latency")
        for name in simple:
            if name in changed:
                kw[name] = getattr(self, name)
        if "rtt_ms" in changed:
            kw["rtt_ms"] = dict(self.rtt_ms)
        if "discount_percent" in changed:
            kw["discount_percent"] = {p: float(v) for p, v in self.discount_percent.items()}
        if "edge_devices" in changed:
            kw["edge_devices"] = list(self.edge_devices)
        if changed & {"providers", "regions", "instance_types"}:
            kw["cloud"] = self._cloud_candidates()
        if self.objective != "cost":
            kw["objective"] = self.objective
        return api.Overrides(**kw)

    def _cloud_candidates(self) -> list[CloudCandidate]:
        ws = self.workspace
        cloud = ws.offers_table[ws.offers_table["tier"] == "cloud"]
        spec_by_provider = {c.provider: c for c in ws.spec.hardware.cloud}
        out = []
        for provider in self.providers:
            mine = cloud[cloud["provider"] == provider]
            regions = [r for r in self.regions if r in set(mine["region"])]
            types = [t for t in self.instance_types if t in set(mine[mine["region"].isin(regions)]["instance_type"])]
            if not regions or not types:
                continue
            was = spec_by_provider.get(provider)
            out.append(CloudCandidate(provider=provider, regions=regions, instance_types=types,
                                      gpu=was.gpu if was else None,
                                      max_hourly_usd=was.max_hourly_usd if was else None))
        return out

