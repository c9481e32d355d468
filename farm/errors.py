"""The farm's own errors. Everything a user can cause derives from :class:`FarmError`.

The CLI turns a :class:`UsageError` (bad input: a job file, a model file, an unknown job) into
exit code 2 with its message; other farm errors are reported as failures of the run.
"""

from __future__ import annotations


class FarmError(Exception):
    """Base class of every error the farm raises on purpose."""


class UsageError(FarmError):
    """Bad input from the user: the message says what, where, and what was expected."""


class SpecError(UsageError):
    """A job (or budget) file is invalid. Names the file, the field path and the rule."""

    def __init__(self, path: object, field: str, expected: str, got: object = None) -> None:
        self.path = str(path)
        self.field = field
        self.expected = expected
        self.got = got
        suffix = "" if got is None else f", got {got!r}"
        super().__init__(f"{self.path}: field `{field}`: expected {expected}{suffix}")


class RuntimeMissingError(UsageError):
    """A target's runtime library does not import on this machine."""


class TrialError(FarmError):
    """A candidate could not be built or evaluated; the trial is stored as failed."""


class WrongHardwareError(TrialError):
    """A node was asked to measure a target its hardware does not match."""


class StepError(TrialError):
    """A trial failed in a named step: ``"<step> failed (<transform or runtime>): <why>"``."""

    def __init__(self, step: str, what: str, why: str) -> None:
        self.step, self.what, self.why = step, what, why
        super().__init__(f"{step} failed ({what}): {why}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # travels back to the driver through Ray (pickle): rebuilt from its three parts
        return (type(self), (self.step, self.what, self.why))


class UnpricedHardwareError(UsageError):
    """A CUDA trial ran, or would run, on a GPU that neither the catalog nor the job prices."""


class CannotConfirm(FarmError):
    """``farm gate`` cannot re-measure this configuration here; the message says why."""


class NotFreshProcessError(FarmError):
    """An evaluation was handed a worker process that is not fresh (a runtime loaded, or a build
    worker). Not the candidate's fault: the worker exits after the refusal (``max_calls=1``),
    so the driver retries the evaluation in another one."""
