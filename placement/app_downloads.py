"""What the user takes away from the app: the plan shown as plan.json, its summary, the
profiles, its procurement report and its deployer bundle (a zip of `placement export`'s folder).

A mixin of `AppState` (which owns `plan`, `profiles`, `workspace`, `overrides()` and the
session's temporary folder); each is built when asked for, never ahead of a click."""

from __future__ import annotations

import io
import tempfile
import threading
import zipfile
from pathlib import Path

from profiles.errors import UserError

# Stored, not deflated: ONNX weights and compiled libraries barely compress, and deflating a
# demo's 100+ MB takes seconds; text (manifests, YAML, JSON) is deflated.
STORED = {".onnx", ".so", ".tar", ".zip"}
BUNDLE_ROOT = "bundle"


class Downloads:
    _bundle_lock = threading.Lock()

    def plan_json(self) -> str:
        return self.plan.model_dump_json(indent=2) if self.plan is not None else "{}"

    def summary_markdown(self) -> str:
        from placement.report import markdown_summary

        return markdown_summary(self.plan) if self.plan is not None else ""

    def profiles_csv_text(self) -> str:
        return self.profiles.to_csv(index=False) if self.profiles is not None else ""

    def report_html(self) -> str:
        """The procurement report of the plan shown (its sensitivity cases re-solved here)."""
        from placement.procurement import build_report, render_html

        if self.plan is None or self.workspace is None:
            return ""
        return render_html(build_report(self.workspace, overrides=self.overrides(), plan=self.plan))

    def bundle_zip(self, progress=None) -> bytes:
        """The deployer's bundle of the plan shown, as `placement export` writes it (artifacts,
        manifests per pool and site, manifest.json), zipped under `bundle/`. Built on request
        (TVM pieces compile here: seconds to minutes); the last one is kept for the same plan.
        A plan that cannot be exported raises `UserError` naming why."""
        from placement.export import export_bundle

        plan, ws = self.plan, self.workspace
        if plan is None or ws is None:
            raise UserError("bundle: no plan yet")
        if not plan.feasible or not plan.placements:
            why = "; ".join(plan.violations) if plan.violations else f"the plan is {plan.status}"
            raise UserError(f"bundle: {why}: nothing to export (show a plan that meets the SLO and budget)")
        with self._bundle_lock:
            cached = getattr(self, "_bundle_cache", None)
            if cached is not None and cached[0] is plan and cached[1] is ws:
                return cached[2]
            root = getattr(self, "_upload_root", None)
            with tempfile.TemporaryDirectory(prefix="bundle-", dir=root if root and Path(root).exists() else None) as tmp:
                out = Path(tmp) / BUNDLE_ROOT
                export_bundle(ws, plan, out, progress=progress)
                data = zip_folder(out, BUNDLE_ROOT)
            self._bundle_cache = (plan, ws, data)
            return data


    def bundle_download(self) -> bytes | None:
        """`bundle_zip` for the page: a plan that cannot be exported becomes the session's
        error (a notification naming why), and None."""
        try:
            return self.bundle_zip()
        except UserError as exc:
            self._fail(f"bundle: {exc}" if not str(exc).startswith("bundle") else str(exc))
            return None


def zip_folder(folder: Path, prefix: str) -> bytes:
    """Every file under `folder`, in name order, under `prefix/` (hard-linked copies as copies)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            method = zipfile.ZIP_STORED if path.suffix in STORED else zipfile.ZIP_DEFLATED
            z.write(path, f"{prefix}/{path.relative_to(folder).as_posix()}", compress_type=method)
    return buffer.getvalue()
