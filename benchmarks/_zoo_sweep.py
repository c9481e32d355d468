"""The model-zoo sweep's driver: the results file, resumed cell by cell, and the loop over one
model's cells (its preparation in a Ray task, then each cell as a job's trial)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _zoo_cells import (
    COLUMNS,
    CONTRACT,
    EXPORTERS,
    FP32_TOLERANCE,
    MAX_PARAMS,
    ONNX_CELLS,
    REPRESENTATIVES,
    SEED,
    TASK_TIMEOUT_S,
    TORCH,
    cell_key,
    one_line,
)
from _zoo_tasks import Prepared, count_params, prepare_model, trial_candidate


class Sweep:
    """The results file and the loop over models; every finished step is saved at once."""

    def __init__(self, results: Path, timeout_s: float = TASK_TIMEOUT_S) -> None:
        self.dir = results
        self.path = results / "results.json"
        self.timeout_s = timeout_s
        self.data: dict[str, Any] = (
            json.loads(self.path.read_text()) if self.path.exists() else {"models": {}}
        )
        self.models: dict[str, dict[str, Any]] = self.data["models"]
        #: Held while the results change or are written (models run in parallel threads).
        self.lock = threading.RLock()

    def save(self) -> None:
        with self.lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            tmp.replace(self.path)

    def update(self, name: str, **fields: Any) -> dict[str, Any]:
        """Set fields of model ``name``'s record and save; returns the record."""
        with self.lock:
            record = self.models.setdefault(name, {"cells": {}})
            record.update(fields)
            self.save()
            return record

    def todo(self, name: str, redo: str) -> list[tuple[str, str, str]]:
        """Columns of ``name`` still to run: missing ones, plus failed ones with
        ``redo="failed"`` (every one with ``redo="all"``)."""
        record = self.models.get(name, {})
        if record.get("skip") and redo != "all":
            return []
        cells = record.get("cells", {})
        out = []
        for column in COLUMNS:
            cell = cells.get(cell_key(*column))
            if cell is None or redo == "all" or (redo == "failed" and cell["status"] != "ok"):
                out.append(column)
        return out

    def run_model(self, name: str, columns: list[tuple[str, str, str]], log: Callable) -> None:
        import ray

        start = time.perf_counter()
        record = self.update(name)
        exporters = sorted({e for e, _, _ in columns if e != TORCH}, key=EXPORTERS.index)
        want_torch = any(e == TORCH for e, _, _ in columns)
        onnx_dir = self.dir / "onnx"
        onnx_dir.mkdir(parents=True, exist_ok=True)
        params = record.get("params") or count_params(name)
        if params > MAX_PARAMS and name not in REPRESENTATIVES:
            skip = f"{params / 1e6:.0f}M parameters > {MAX_PARAMS / 1e6:.0f}M"
            self.update(name, params=params, skip=skip, cells={})
            log(f"{name}: skipped ({skip})")
            return
        known: dict[str, Any] = {
            k: record[k] for k in ("size", "size_note", "probe_s") if k in record
        }
        known["params"] = params
        remote = ray.remote(max_retries=0, max_calls=1)(prepare_model)
        try:
            prepared: Prepared = self._get(
                remote.remote(name, exporters, want_torch, str(onnx_dir), known)
            )
        except Exception as exc:  # the task died or timed out: every column fails with it
            reason = f"prepare: {one_line(exc)}"
            self.update(name, params=params)
            for column in columns:
                self._set(name, column, "failed", reason, 0.0)
            log(f"{name}: {reason}")
            return
        if "skip" in prepared.probe:
            self.update(name, **prepared.probe, cells={})
            log(f"{name}: skipped ({prepared.probe['skip']})")
            return
        self.update(
            name, **prepared.probe, exports={**record.get("exports", {}), **prepared.exports}
        )
        size = prepared.probe["size"]
        log(f"{name}: {prepared.probe['params'] / 1e6:.1f}M parameters, {size}x{size}")
        for exporter, target, precision in columns:
            column = (exporter, target, precision)
            if exporter == TORCH:
                if prepared.torch is None:
                    self._set(name, column, "failed", f"export: {prepared.torch_error}", 0.0)
                else:
                    self._cell(name, column, *prepared.torch, log)
                continue
            export = prepared.exports[exporter]
            if export["status"] != "ok":
                if export.get("stage") == "validation":
                    self._set(name, column, "failed", f"validation: {export['reason']}", 0.0)
                else:
                    reason = f"{exporter} export failed: {export['reason']}"
                    self._set(name, column, "skipped", reason, 0.0)
                continue
            source, data, reference = prepared.onnx[exporter]
            self._cell(name, column, source, data, reference, log)
        for exporter in exporters:  # keep an export only while one of its cells fails
            cells = [record["cells"].get(cell_key(exporter, t, p)) for t, p in ONNX_CELLS]
            if all(c and c["status"] == "ok" for c in cells):
                for path in onnx_dir.glob(f"{name}.{exporter}.onnx*"):  # and its .data
                    path.unlink()
        self.update(
            name, seconds=round(record.get("seconds", 0.0) + time.perf_counter() - start, 1)
        )

    def _cell(
        self,
        name: str,
        column: tuple[str, str, str],
        source: Any,
        data: Any,
        reference: Any,
        log: Callable,
    ) -> None:
        """Build (when the trial's chain has steps) and evaluate one cell as a job's trial
        (``farm.engine.run_candidate``).

        ``source`` is the ONNX model, or for cpu-torch the already exported program."""
        import dataclasses

        from farm.engine import run_candidate
        from workloads.tasks import Classification

        exporter, target, precision = column
        start = time.perf_counter()
        try:
            candidate = trial_candidate(target, precision)
            if exporter == TORCH:
                candidate = dataclasses.replace(candidate, chain=())
            ev = run_candidate(
                candidate,
                source,
                data,
                reference,
                Classification(),
                contract=CONTRACT,
                seed=SEED,
                timeout_s=self.timeout_s,
            ).evaluation
        except Exception as exc:
            self._set(name, column, "failed", one_line(exc), time.perf_counter() - start)
            log(f"  {name} {cell_key(*column)}: FAILED {one_line(exc, 160)}")
            return
        took = time.perf_counter() - start
        diff = relative_diff_of(ev.metrics, reference)
        extra = {
            "metrics": ev.metrics,
            "precision_actual": ev.precision_actual,
            "p50_ms": ev.measurement.get("p50_ms"),
            "relative_diff": diff,
        }
        if precision == "fp32" and diff > FP32_TOLERANCE:
            reason = (
                f"outputs differ from the fp32 reference: max |Δlogit| is {diff:.1%} of the "
                "largest logit"
            )
            self._set(name, column, "failed", reason, took, extra)
            log(f"  {name} {cell_key(*column)}: FAILED {reason}")
            return
        self._set(name, column, "ok", "", took, extra)
        log(f"  {name} {cell_key(*column)}: ok ({ev.precision_actual}) {took:.0f}s")

    def _get(self, ref: Any) -> Any:
        """``ray.get`` with the task timeout; a task past it is cancelled."""
        import ray

        try:
            return ray.get(ref, timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            raise TimeoutError(f"timed out after {self.timeout_s:.0f} s") from None

    def _set(
        self,
        name: str,
        column: tuple[str, str, str],
        status: str,
        reason: str,
        seconds: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        cell = {"status": status, "reason": reason, "seconds": round(seconds, 1), **(extra or {})}
        with self.lock:
            self.update(name)["cells"][cell_key(*column)] = cell
            self.save()


def relative_diff_of(metrics: dict[str, float], reference: Any) -> float:
    """``max_abs_logit_diff`` (against the reference) relative to the reference's largest
    |logit|."""
    import numpy as np

    scale = float(np.max(np.abs(np.asarray(reference)))) if np.size(reference) else 0.0
    return float(metrics.get("max_abs_logit_diff", 0.0)) / (scale if scale > 0 else 1.0)
