"""Artifacts: the files a transform produces, moved between nodes as bytes.

An artifact never travels as a path: a build may run on one node and the measurement on another,
so the bytes themselves go through Ray's object store (or the artifact cache).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Known formats. ``torch-state`` is a state_dict plus the name of the builder that makes the
#: module; ``torch-export`` is a ``torch.export`` ExportedProgram (``.pt2``); ``onnx`` one ONNX
#: file; ``openvino-ir`` an OpenVINO ``model.xml`` + ``model.bin`` pair.
FORMATS = ("torch-state", "torch-export", "onnx", "openvino-ir")


@dataclass(frozen=True)
class Artifact:
    format: str
    files: dict[str, bytes]
    #: Small JSON-able facts about the artifact (builder name, input shape, quantized layers…).
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"artifact format must be one of {FORMATS}, got {self.format!r}")
        if not self.files:
            raise ValueError("an artifact needs at least one file")

    @property
    def main_file(self) -> str:
        """The file a runtime opens: the first one (``model.xml`` for OpenVINO IR)."""
        return next(iter(self.files))

    @property
    def size_bytes(self) -> int:
        return sum(len(b) for b in self.files.values())

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256(self.format.encode())
        for name in sorted(self.files):
            h.update(name.encode())
            h.update(hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()[:16]

    def write_to(self, directory: Path) -> Path:
        """Write the files into ``directory`` and return the path of the main file."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (directory / name).write_bytes(data)
        return directory / self.main_file

    @classmethod
    def read_from(
        cls, format: str, paths: list[Path], meta: dict[str, Any] | None = None
    ) -> Artifact:
        return cls(format, {p.name: p.read_bytes() for p in paths}, dict(meta or {}))
