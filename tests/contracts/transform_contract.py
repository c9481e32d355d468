"""The checks every transform must pass, written once: a transform's tests subclass
:class:`TransformContract` and provide its name and an input, so a new transform gets these
checks for free::

    class TestPruneContract(TransformContract):
        name = "prune"
        config = {"ratio": 0.25, "finetune_steps": 5}   # a config that changes the model
        identity = {"ratio": 0.0}                        # one the chain may skip (or None)

        @pytest.fixture
        def artifact(self, digits_artifact): return digits_artifact

What is checked: formats in and out (and a refusal naming the formats it takes), the chain of
transforms recorded in the result's meta, determinism (the artifact cache keys builds by their
recipe), identity configs declared as such, and every value its search space offers accepted by
``make_config`` (so the search never proposes a configuration the transform refuses).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

import optimizers
from farm.artifact import Artifact
from farm.errors import UsageError
from optimizers import BuildContext, get_transform
from targets import get_target
from workloads import WorkloadTraits

#: Workload facts under which search spaces are checked: a torch classifier that allows another
#: resolution, an ONNX file, and no workload at all (a job file being checked).
TRAITS = {
    "torch": WorkloadTraits(allows_resolution=True, input_shape=(3, 32, 32)),
    "onnx-file": WorkloadTraits(
        torch_source=False, torch_exportable=False, input_shape=(3, 32, 32)
    ),
    "no-workload": None,
}
#: Targets whose spaces are checked.
TARGETS = ("cpu-onnxruntime", "cpu-openvino", "cpu-torch", "cuda-tensorrt")


class TransformContract:
    """Subclass it with ``name``, ``config``, ``identity`` and the fixture ``artifact`` (an
    input the transform takes); a ``ctx`` fixture (the build context) must be in scope."""

    #: The registered name of the transform under test.
    name: ClassVar[str]
    #: A config that changes the model.
    config: ClassVar[dict[str, Any]] = {}
    #: A config the chain may skip (``is_identity``), or None when the transform has none.
    identity: ClassVar[dict[str, Any] | None] = None

    @pytest.fixture
    def artifact(self) -> Artifact:
        raise NotImplementedError("a TransformContract subclass provides the `artifact` fixture")

    def same_model(self, a: Artifact, b: Artifact) -> bool:
        """Whether two builds are the same model: the same bytes (a transform whose output
        carries names a library generates may say what else counts as the same)."""
        return a.files == b.files

    @pytest.fixture
    def applied(self, artifact: Artifact, ctx: BuildContext) -> Artifact:
        return optimizers.apply(self.name, dict(self.config), artifact, ctx)

    # -- formats -----------------------------------------------------------------------------
    def test_takes_one_of_its_input_formats_and_makes_its_output_format(
        self, artifact: Artifact, applied: Artifact
    ) -> None:
        transform = get_transform(self.name)
        assert artifact.format in transform.inputs
        assert applied.format == transform.output

    def test_records_itself_at_the_end_of_the_chain(
        self, artifact: Artifact, applied: Artifact
    ) -> None:
        chain = applied.meta["transforms"]
        assert chain[:-1] == artifact.meta.get("transforms", [])
        assert chain[-1]["name"] == self.name
        for key, value in self.config.items():
            assert chain[-1]["config"][key] == value

    def test_refuses_another_format_naming_the_ones_it_takes(self, ctx: BuildContext) -> None:
        transform = get_transform(self.name)
        wrong = next(f for f in ("torch-state", "onnx", "openvino-ir") if f not in transform.inputs)
        with pytest.raises(UsageError, match=" or ".join(transform.inputs)):
            optimizers.apply(self.name, dict(self.config), Artifact(wrong, {"x": b""}), ctx)

    # -- the artifact cache relies on these --------------------------------------------------
    def test_the_same_input_and_config_give_the_same_artifact(
        self, artifact: Artifact, ctx: BuildContext, applied: Artifact
    ) -> None:
        again = optimizers.apply(self.name, dict(self.config), artifact, ctx)
        assert self.same_model(again, applied)

    def test_identity_configs_are_declared(self) -> None:
        assert not optimizers.is_identity(self.name, dict(self.config))
        if self.identity is not None:
            assert optimizers.is_identity(self.name, dict(self.identity))

    # -- configuration -----------------------------------------------------------------------
    def test_every_field_has_a_default_and_the_config_is_frozen(self) -> None:
        cfg = optimizers.make_config(self.name, {})
        assert dataclasses.is_dataclass(cfg)
        field = dataclasses.fields(cfg)[0].name if dataclasses.fields(cfg) else None
        if field is not None:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(cfg, field, getattr(cfg, field))

    def test_an_unknown_field_is_refused_naming_the_transform(self) -> None:
        with pytest.raises(UsageError, match=f"transform '{self.name}': unknown config field"):
            optimizers.make_config(self.name, {"no_such_knob": 1})

    @pytest.mark.parametrize("target", TARGETS)
    @pytest.mark.parametrize("traits", list(TRAITS), ids=list(TRAITS))
    def test_every_value_its_search_space_offers_is_a_valid_config(
        self, target: str, traits: str
    ) -> None:
        space = optimizers.search_space(self.name, get_target(target), TRAITS[traits])
        for key, distribution in space.items():
            name, _, field = key.partition(".")
            assert name == self.name
            for choice in distribution.choices:
                optimizers.make_config(self.name, {field: choice})
