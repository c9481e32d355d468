"""The farm's timing harness: a contract, a measurement, and the one function that makes it.

Pure Python plus numpy; importing it imports no runtime. The methodology is in
docs/measurement.md.
"""

from __future__ import annotations

from farm.measure.contract import PERCENTILE_METHODS, SCENARIOS, Contract
from farm.measure.harness import Measurement, measure
from farm.measure.stats import percentile

__all__ = ["PERCENTILE_METHODS", "SCENARIOS", "Contract", "Measurement", "measure", "percentile"]
