"""Content-addressed artifact cache on the driver's disk (``results/artifacts/<key>/``).

The key is the hash of the workload's recipe and the transform chain that produced the artifact
(:meth:`farm.search.candidate.Candidate.build_key`), so trials that differ only in runtime options,
and
reruns of a job, reuse what was built. Writes are atomic (a temporary folder renamed into place).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from farm.artifact import Artifact

DEFAULT_CACHE = Path("results") / "artifacts"


class ArtifactCache:
    def __init__(self, root: str | Path = DEFAULT_CACHE) -> None:
        self.root = Path(root)

    def _dir(self, key: str) -> Path:
        return self.root / key

    def __contains__(self, key: str) -> bool:
        return (self._dir(key) / "artifact.json").is_file()

    def load(self, key: str) -> Artifact | None:
        d = self._dir(key)
        try:
            info = json.loads((d / "artifact.json").read_text())
            files = {name: (d / name).read_bytes() for name in info["files"]}
        except (OSError, ValueError, KeyError):
            return None
        return Artifact(info["format"], files, info.get("meta", {}))

    def save(self, key: str, artifact: Artifact) -> None:
        if key in self:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            artifact.write_to(tmp)
            info = {"format": artifact.format, "files": list(artifact.files), "meta": artifact.meta}
            (tmp / "artifact.json").write_text(json.dumps(info, sort_keys=True, default=str))
            os.replace(tmp, self._dir(key))
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if key not in self:
                raise
