"""Rows measured while serving: each stage's calls in a verify run as a ProfileTable row
(source `measured-served`), with the load it served under in words, for later plans
(`placement verify --store-profiles`). A row's latency is how long a call held its worker: the
runtime call plus the runner's handling of it (reading the request off the queue when it was
waiting, fitting its inputs, handing its outputs on), which is what the queue in front of the
worker sees; a batched stage's is its runtime call.

Why: a profile runs one piece alone, back to back, on warm caches. Served, the same piece runs
between requests of other pieces on the same cores (their weights evict its own from the caches,
the dispatcher and the other workers take turns on the cores), and on `bench/fidelity.py` a call
held its worker 14-70 % longer at the median. The queueing model is only as right as the service time it is given:
a plan made on these rows predicts the next run of the same plan (docs/verify.md, Fidelity)."""

from __future__ import annotations

import datetime as dt

from profiles import table as pt

# fewer compute samples than this and a stage's p95 is not worth storing
MIN_SAMPLES = 20


def served_rows(ws, topology, data: dict) -> tuple[list[dict], list[str]]:
    """(rows, notes): a `measured-served` ProfileTable row per stage that ran at least
    `MIN_SAMPLES` requests, with the store's columns `model` (the piece's ONNX sha256),
    `others_cpu_share` (other processes during the run) and `served_load`; a note per stage left
    out. Nothing from a run that ended early (a worker died): its times are not a served load."""
    from profiles.onnx_prep import model_digest
    from profiles.store import MODEL, OTHERS_CPU_SHARE, SERVED_LOAD

    if data.get("failure"):
        return [], [f"not stored: the run ended early ({data['failure']})"]
    sources = {s.piece: s for s in ws.pieces}
    table = ws.profiles  # (profiled on first use)
    scale, machine = data["scale"], data.get("machine") or {}
    today = dt.date.today().isoformat()
    rows, notes = [], []
    for s in data["stages"]:
        stage = topology.stages[s["stage"]]
        measured = s["measured"]
        if s["requests"] < MIN_SAMPLES or measured["compute_ms_p50"] is None:
            notes.append(f"not stored: {s['stage']} ran {s['requests']} request(s) (fewer than {MIN_SAMPLES})")
            continue
        source = sources.get(stage.piece)
        if source is None:
            notes.append(f"not stored: {s['stage']}: piece {stage.piece} is not one of the spec's pieces")
            continue
        used = table[(table[pt.PIECE] == stage.piece) & (table[pt.HARDWARE] == stage.hardware)
                     & (table[pt.RUNTIME] == stage.runtime) & (table[pt.BATCH] == stage.batch)]
        group = topology.groups[stage.group]
        sharing = [x for x in group.stages if x != stage.name]
        utilisation = measured["utilisation"]
        load = (f"verify {today}: {scale['sites']} site(s) x {scale['rate_per_site_rps']:.4g} req/s "
                f"{scale['arrival']}, {s['requests']} requests; "
                f"{'pool of ' + str(group.processes) if group.kind == 'pool' else 'site device'}"
                + (f" shared with {', '.join(sharing)}" if sharing else "")
                + (f"; utilisation {utilisation:.2f}" if utilisation is not None else "")
                + (f"; waited for a core {measured['core_wait_share']:.0%} of its compute"
                   if measured.get("core_wait_share") is not None else "")
                + f"; {data['workers']}")
        held = measured.get("held_ms_p50") is not None
        p50 = float(measured["held_ms_p50" if held else "compute_ms_p50"])
        p95 = float(measured["held_ms_p95" if held else "compute_ms_p95"])
        load += f"; {'the call and its handling' if held else 'the runtime call'}: compute p50 " \
                f"{measured['compute_ms_p50']:.2f} ms"
        rows.append({
            pt.PIECE: stage.piece, pt.HARDWARE: stage.hardware, pt.RUNTIME: stage.runtime,
            pt.BATCH: stage.batch, pt.LATENCY_MS_P50: p50, pt.LATENCY_MS_P95: max(p95, p50),
            pt.MEMORY_MB: float(used[pt.MEMORY_MB].max()) if len(used) else 1.0,
            pt.SOURCE: pt.MEASURED_SERVED, pt.MEASURED_AT: today,
            pt.TVM_VERSION: _first_text(used[pt.TVM_VERSION]),
            pt.ERROR_BAND: None,
            MODEL: model_digest(source.onnx_path),
            OTHERS_CPU_SHARE: machine.get("others_cpu_share_during"),
            SERVED_LOAD: load,
        })
    return rows, notes


def _first_text(column) -> str:
    values = [v for v in column if isinstance(v, str) and v]
    return values[0] if values else ""


def store_served_rows(rows: list[dict], store=None) -> int:
    """Put `rows` in the profile store (one per piece, hardware, runtime, batch and model: a later
    run replaces an earlier one); the profiler gives them to every later plan of those models."""
    from profiles.store import MODEL, served_key

    if store is None:
        from placement.tables import profile_store

        store = profile_store()
    return store.put_rows((served_key(r[pt.PIECE], r[pt.HARDWARE], r[pt.RUNTIME], r[pt.BATCH], r[MODEL]), r)
                          for r in rows)
