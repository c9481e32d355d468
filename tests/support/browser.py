"""A real headless Chromium for the tests of pages the farm writes (the report, the gallery)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2200",
]


def chromium() -> str:
    """Chromium's path; the test is skipped, saying why, where it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        print("skipping: chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


def run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def gallery_page(folder: Path, body: str) -> Path:
    """A page holding ``body`` (a gallery section) alone."""
    page = folder / "gallery.html"
    page.write_text(f"<!DOCTYPE html><html><body style='background:#fff'>{body}</body></html>")
    return page


def screenshot_is_drawn(page: Path) -> None:
    """Chromium's screenshot of ``page`` shows pictures: not blank, many colours."""
    shot = page.with_name("gallery.png")
    run_chromium(f"--screenshot={shot}", page.as_uri())
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.std() > 10  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # images, not only text
