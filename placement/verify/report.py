"""Predicted against measured: per stage compute and wait (p50, p95) and utilisation; end to
end the plan's p95 (a sum of per-piece p95s: conservative) against the measured p95 and p99, the
ratio, and whether the measured latency breaks the SLO. The harness's own serving overhead (its
hop through the dispatcher, timed by probes before the run) is added to the plan's p95 as a term
of its own, hops on the critical path x the hop's p95, and the ratio is given against the plan
alone and against plan + overhead (docs/verify.md). Pure functions of the run's record."""

from __future__ import annotations

import numpy as np

from placement.verify.topology import Topology
from profiles import table as pt

# a stage whose compute waited for a core this share of its time or more is said in the report
CORE_SHORT = 0.05
# and one whose compute overlapped by other workers' was this much slower at p95 than alone
SLOWED = 1.15


def _slowed(measured: dict) -> float:
    alone, crowded = measured.get("compute_alone_ms_p95"), measured.get("compute_overlapped_ms_p95")
    return crowded / alone if alone and crowded else 0.0


def _pct(values, q) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _profile_p50(ws, stage) -> float | None:
    try:
        t = ws.profiles
    except Exception:  # noqa: BLE001 - no profiles at hand: the p50 stays unknown
        return None
    rows = t[(t[pt.PIECE] == stage.piece) & (t[pt.HARDWARE] == stage.hardware)
             & (t[pt.RUNTIME] == stage.runtime) & (t[pt.BATCH] == stage.batch)]
    return float(rows[pt.LATENCY_MS_P50].min()) if len(rows) else None


def _predicted(plan, stage, ws) -> dict:
    p = next(x for x in plan.placements if x.piece == stage.placement)
    if stage.name.endswith(":head") and p.head is not None:
        return {"compute_ms_p50": _profile_p50(ws, stage), "compute_ms_p95": p.head.latency_ms_p95,
                "wait_ms_p95": None, "utilisation": None}
    wait = p.wait_exact_ms if p.wait_exact_ms is not None else p.wait_ms
    return {"compute_ms_p50": _profile_p50(ws, stage), "compute_ms_p95": p.compute_ms_p95,
            "wait_ms_p95": wait, "batch_fill_ms": p.batch_fill_ms, "wait_source": p.wait_source,
            "utilisation": p.utilisation}


def serving_overhead(record, topology: Topology, plan) -> dict:
    """The harness's hop cost per worker visit (probe round trips, pooled over the groups) and
    the overhead on the critical path: hops x the hop at the plan's percentile, summed like the
    plan sums its per-piece percentiles (each hop at its tail: conservative). `ms_independent`
    beside it, not used: the percentile of a sum of `hops` independent hops (resampled)."""
    q = plan.latency.percentile
    samples = [x for v in record.hop_ms.values() for x in v]
    inbound = [x for sr in record.stages.values() for x in sr.inbounds_ms]
    back = [x for sr in record.stages.values() for x in sr.returns_ms]
    hops = topology.hops(plan.latency.critical_path)
    per_hop = _pct(samples, q)
    independent = None
    if samples and hops:
        draws = np.random.default_rng(0).choice(np.asarray(samples), size=(20_000, hops))
        independent = _pct(draws.sum(axis=1), q)
    return {"probes": len(samples), "probe_s": record.probe_s, "hop_ms_p50": _pct(samples, 50),
            "hop_ms_p95": _pct(samples, 95), "hop_ms_max": max(samples, default=None), "percentile": q,
            "per_hop_ms": per_hop, "hops": hops, "ms": None if per_hop is None else hops * per_hop,
            "ms_independent": independent if hops else 0.0,
            "groups": {g: {"probes": len(v), "hop_ms_p50": _pct(v, 50), "hop_ms_p95": _pct(v, 95)}
                       for g, v in record.hop_ms.items()},
            "composition": f"hops x per-hop p{q}, as the plan sums per-piece p{q}s",
            # during the run, not added: the two halves of a visit's hop (to an idle worker; back
            # from any), how late the dispatcher handled a delivery (after a link's delay, or at
            # once), and the share of a core the dispatcher process used
            "run_inbound_ms_p50": _pct(inbound, 50), "run_inbound_ms_p95": _pct(inbound, 95),
            "run_return_ms_p50": _pct(back, 50), "run_return_ms_p95": _pct(back, 95),
            "late_ms_p50": _pct(record.late_ms, 50), "late_ms_p95": _pct(record.late_ms, 95),
            "dispatcher_core_share": record.dispatcher_cpu_s / record.span_s if record.span_s else None}


def compare(plan, topology: Topology, record, ws, processes_note: str = "") -> dict:
    from placement.verify.interference import by_stage

    stages = []
    crowded = by_stage(record.calls)
    for name, stage in topology.stages.items():
        sr = record.stages[name]
        group = topology.groups[stage.group]
        # a pool shared by several pieces is predicted as one utilisation (the pool's): measured
        # the same way, over every piece it runs
        busy_ms = (sum(record.stages[s].busy_ms for s in group.stages)
                   if group.kind == "pool" and len(group.stages) > 1 else sr.busy_ms)
        stages.append({
            "stage": name, "piece": stage.piece, "where": stage.offer, "hardware": stage.hardware,
            "runtime": stage.runtime,
            "batch": stage.batch, "processes": group.processes, "requests": len(sr.computes_ms),
            "predicted": _predicted(plan, stage, ws),
            "measured": {"compute_ms_p50": _pct(sr.computes_ms, 50), "compute_ms_p95": _pct(sr.computes_ms, 95),
                         "wait_ms_p50": _pct(sr.waits_ms, 50), "wait_ms_p95": _pct(sr.waits_ms, 95),
                         "inbound_ms_p50": _pct(sr.inbounds_ms, 50), "inbound_ms_p95": _pct(sr.inbounds_ms, 95),
                         "return_ms_p50": _pct(sr.returns_ms, 50), "return_ms_p95": _pct(sr.returns_ms, 95),
                         "utilisation": (busy_ms / (record.span_s * 1000.0 * group.processes)
                                         if record.span_s else None),
                         # the compute's share spent runnable but waiting for a core (this
                         # machine's cores were short: measured compute includes it)
                         "core_wait_ms_p95": _pct(sr.core_waits_ms, 95),
                         # how long a call held its worker: the runtime call plus the runner's
                         # handling of it (what the queue in front of the worker sees)
                         "held_ms_p50": _pct(sr.helds_ms, 50), "held_ms_p95": _pct(sr.helds_ms, 95),
                         "core_wait_share": (sum(sr.core_waits_ms) / sr.busy_ms
                                             if sr.core_waits_ms and sr.busy_ms else None),
                         # compute while no other worker computed, and while one did all along
                         # (placement.verify.interference)
                         **crowded.get(name, {})},
        })
    lat = record.latencies_ms
    predicted = plan.latency.p95_ms
    q = plan.latency.percentile
    measured_q = _pct(lat, q)
    links = [{"from": k[0], "to": k[1], "bytes": b, "delay_ms": record.link_delay_ms.get(k, 0.0)}
             for k, b in record.link_bytes.items()]
    overhead = serving_overhead(record, topology, plan)
    with_overhead = predicted + overhead["ms"] if predicted is not None and overhead["ms"] is not None else None
    return {
        "application": plan.application, "workers": processes_note, "failure": record.failure,
        "worker_pids": record.worker_pids, "stages": stages, "links": links, "serving_overhead": overhead,
        "end_to_end": {
            "requests_sent": record.sent, "requests_done": len(lat), "unfinished": record.unfinished,
            "percentile": q, "predicted_ms": predicted, "measured_ms_p50": _pct(lat, 50),
            "measured_ms_p95": _pct(lat, 95), "measured_ms_p99": _pct(lat, 99),
            "measured_ms_at_percentile": measured_q,
            "ratio": (_pct(lat, 95) / predicted) if lat and predicted else None,
            "serving_overhead_ms": overhead["ms"], "predicted_with_overhead_ms": with_overhead,
            "ratio_with_overhead": (_pct(lat, 95) / with_overhead) if lat and with_overhead else None,
            "slo_ms": plan.latency.slo_ms,
            "slo_breached": bool(measured_q is not None and measured_q > plan.latency.slo_ms),
        },
    }


def _f(x, digits=2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def lines(data: dict) -> list[str]:
    """The comparison as console lines."""
    out = [f"{data['application']}: {data['workers']}"]
    head = f"{'stage':<22} {'where':<26} {'n':>6}  {'compute p50 pred/meas':>22} {'compute p95 pred/meas':>22} " \
           f"{'wait p50 meas':>13} {'wait p95 pred/meas':>20} {'util pred/meas':>15}"
    out.append(head)
    for s in data["stages"]:
        p, m = s["predicted"], s["measured"]
        out.append(
            f"{s['stage'][:22]:<22} {(s['where'] + (' x' + str(s['processes']) if s['processes'] > 1 else ''))[:26]:<26} "
            f"{s['requests']:>6}  {_f(p['compute_ms_p50']) + ' / ' + _f(m['compute_ms_p50']):>22} "
            f"{_f(p['compute_ms_p95']) + ' / ' + _f(m['compute_ms_p95']):>22} {_f(m['wait_ms_p50']):>13} "
            f"{_f(p['wait_ms_p95']) + ' / ' + _f(m['wait_ms_p95']):>20} "
            f"{_f(p['utilisation']) + ' / ' + _f(m['utilisation']):>15}")
    short = [s for s in data["stages"] if (s["measured"].get("core_wait_share") or 0.0) >= CORE_SHORT]
    if short:
        out.append("waited for a core (runnable, not running) during compute: " + ", ".join(
            f"{s['stage']} {100 * s['measured']['core_wait_share']:.0f} % (p95 {_f(s['measured']['core_wait_ms_p95'])} "
            f"ms per call)" for s in short) + ": this machine's cores were short for the run; measured "
            "compute and waits include it (docs/verify.md)")
    slowed = [s for s in data["stages"] if _slowed(s["measured"]) >= SLOWED]
    if slowed:
        out.append("slowed by other workers computing at the same time: " + ", ".join(
            f"{s['stage']} p50 {_f(s['measured']['compute_alone_ms_p50'])} alone vs "
            f"{_f(s['measured']['compute_overlapped_ms_p50'])} overlapped, p95 "
            f"{_f(s['measured']['compute_alone_ms_p95'])} vs {_f(s['measured']['compute_overlapped_ms_p95'])}"
            for s in slowed) + " ms: the workers share this machine's caches, memory and cores (a pool's "
            "replicas on their own instances do not), and they are slow when the queue is long")
    for link in data["links"]:
        if link["delay_ms"] > 0:
            out.append(f"link {link['from']} -> {link['to']}: {link['bytes']} B, delayed {link['delay_ms']:.2f} ms")
    e, o = data["end_to_end"], data["serving_overhead"]
    out.append(f"serving overhead (this harness's hop through the dispatcher, {o['probes']} probes in "
               f"{o['probe_s']:.2f} s): p50 {_f(o['hop_ms_p50'])}, p95 {_f(o['hop_ms_p95'])} ms per hop; "
               f"{o['hops']} hop(s) on the critical path x p{o['percentile']} = {_f(o['ms'])} ms "
               f"({_f(o['ms_independent'])} if the hops were independent); during the run, not added: "
               f"to a worker p50 {_f(o['run_inbound_ms_p50'])}, p95 {_f(o['run_inbound_ms_p95'])} ms and back p50 "
               f"{_f(o['run_return_ms_p50'])}, p95 {_f(o['run_return_ms_p95'])} ms, deliveries late p50 {_f(o['late_ms_p50'])}, p95 {_f(o['late_ms_p95'])} ms, the dispatcher "
               f"used {_f(None if o['dispatcher_core_share'] is None else 100 * o['dispatcher_core_share'], 0)} "
               "% of a core")
    out.append(f"end to end: {e['requests_done']}/{e['requests_sent']} requests done ({e['unfinished']} unfinished); "
               f"plan p{e['percentile']} {_f(e['predicted_ms'])} ms + serving overhead {_f(e['serving_overhead_ms'])} "
               f"= predicted {_f(e['predicted_with_overhead_ms'])} ms; measured p50 {_f(e['measured_ms_p50'])}, "
               f"p95 {_f(e['measured_ms_p95'])}, p99 {_f(e['measured_ms_p99'])} ms; measured p95 / plan = "
               f"{_f(e['ratio'], 3)}, / (plan + overhead) = {_f(e['ratio_with_overhead'], 3)}")
    machine = data.get("machine")
    if machine:
        out.append(f"this machine: other processes used {100 * machine['others_cpu_share_before']:.0f} % of its "
                   f"CPU just before the run and {100 * machine['others_cpu_share_during']:.0f} % during it "
                   f"({machine['cores']} cores; the run was sized for {machine['free_cores']:.2f} free)"
                   + ("; CONTENDED: measured times include their work" if machine["contended"] else ""))
    if e["slo_breached"]:
        out.append(f"SLO BREACHED: measured p{e['percentile']} {_f(e['measured_ms_at_percentile'])} ms "
                   f"> SLO {e['slo_ms']:g} ms")
    if data.get("failure"):
        out.append(f"run ended early: {data['failure']}")
    return out
