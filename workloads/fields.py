"""``[workload]`` fields that say how images are fed to a model and how its classes are named,
read the same way by every model source (stdlib only).

* ``input_size``: ``[height, width]`` in pixels, or one integer for a square input;
* ``letterbox``: detection inputs keep their aspect ratio, padded (true, the default) or are
  resized to the input size (false);
* ``class_names``: the names per-class metrics use, one per class.

Every error is a :class:`~farm.errors.SpecError` naming the job file and the field.
"""

from __future__ import annotations

from farm._validate import Fields, is_integer

#: The smallest side ``input_size`` accepts.
MIN_INPUT_SIDE = 8


def input_size(section: Fields) -> tuple[int, int] | None:
    """``[workload] input_size``: ``[H, W]`` or one number for a square input; None if absent."""
    if "input_size" not in section:
        return None
    value = section.table["input_size"]
    if is_integer(value):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(is_integer(v) and v >= MIN_INPUT_SIDE for v in value)
    ):
        raise section.error(
            "input_size",
            f"[height, width] in pixels (integers >= {MIN_INPUT_SIDE}) or one integer for a "
            "square input",
            section.table["input_size"],
        )
    return int(value[0]), int(value[1])


def letterbox(section: Fields, default: bool = True) -> bool:
    """``[workload] letterbox`` (detection inputs)."""
    return bool(section.flag("letterbox", default))


def class_names(section: Fields, count: int | None = None) -> tuple[str, ...] | None:
    """``[workload] class_names`` (per-class metrics are named by them), checked against the
    model's class ``count`` when it is known."""
    if "class_names" not in section:
        return None
    names = section.table["class_names"]
    expected = "a list of distinct non-empty names"
    if count is not None:
        expected += f", one per class ({count})"
    if (
        not isinstance(names, list)
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
        or (count is not None and len(names) != count)
    ):
        raise section.error("class_names", expected, names)
    return tuple(names)
