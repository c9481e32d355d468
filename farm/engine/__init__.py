"""The driver of a job: one Optuna study per target, trials submitted through an executor
(Ray), results recorded in the store. The store's only writer.
"""
