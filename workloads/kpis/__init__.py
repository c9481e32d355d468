"""Release KPIs beyond the primary metric: the ``[evaluation]`` table, calibration (ECE,
Brier), robustness under seeded corruptions, slices and operating points.
"""
