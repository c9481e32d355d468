"""The environment fingerprint and its id."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from farm.measure.environment import env_id, fingerprint, git_commit, parse_cpuinfo

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R45
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 hypervisor
processor\t: 1
model name\t: AMD EPYC 9R45
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 hypervisor
"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp sve i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd40
"""


def test_fingerprint_has_the_facts_that_matter_and_is_json() -> None:
    fp = fingerprint()
    assert json.loads(json.dumps(fp)) == fp
    assert fp["arch"] == platform.machine()
    assert fp["python"] == platform.python_version()
    assert fp["logical_cores"] >= 1 and 1 <= fp["cpus_available"] <= fp["logical_cores"]
    assert fp["memory_gib"] > 0
    assert isinstance(fp["gpus"], list)
    assert fp["packages"]["numpy"]
    assert fp["packages"].get("onnxruntime")  # installed in the dev environment
    assert fp["farm_commit"] == "unknown" or len(fp["farm_commit"].split("+")[0]) == 40
    if Path("/proc/cpuinfo").exists():
        assert fp["cpu_model"] != "unknown"


def test_env_id_is_stable_and_content_addressed() -> None:
    fp = fingerprint()
    assert env_id(fp) == env_id(fingerprint())
    assert env_id(dict(reversed(list(fp.items())))) == env_id(fp)
    assert env_id({**fp, "memory_gib": fp["memory_gib"] + 1}) != env_id(fp)
    assert len(env_id(fp)) == 16


def test_parse_cpuinfo_x86() -> None:
    cpu = parse_cpuinfo(X86_CPUINFO)
    assert cpu["model"] == "AMD EPYC 9R45"
    assert cpu["flags"] == ["avx2", "avx512_bf16", "avx512_vnni", "avx512f", "fma"]


def test_parse_cpuinfo_arm_names_the_part_and_dotprod() -> None:
    cpu = parse_cpuinfo(ARM_CPUINFO)
    assert cpu["model"] == "arm implementer=0x41 part=0xd40"
    assert cpu["flags"] == ["asimd", "asimddp", "bf16", "i8mm", "sve"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_of_a_repository_and_of_a_plain_folder(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("commit", "-q", "-m", "x")
    head = git("rev-parse", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("b")
    assert git_commit(tmp_path) == head + "+dirty"
