"""Reports read from the store: ``load`` a job's report data, ``render`` or ``write_report`` the
self-contained HTML page."""

from __future__ import annotations

from dashboards.data import ReportData, load
from dashboards.report import render, write_report

__all__ = ["ReportData", "load", "render", "write_report"]
