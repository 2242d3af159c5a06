"""A plain install serves the simulator: the templates, static files and texts are package data of the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest

from tests.support.demo import running_demo

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "workers", "groups", "config")

pytestmark = pytest.mark.timeout(60)


def _fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8")


def test_a_wheel_installed_in_a_fresh_venv_serves_the_simulator(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "-w", str(tmp_path / "dist"), "--no-deps"], check=True)
    (wheel,) = (tmp_path / "dist").glob("yihu-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)
    # The dependencies come from this environment's site-packages (a path, not its .pth files: the
    # editable install of the work tree stays out).
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "yihu-deps.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    where = subprocess.run([str(python), "-c", "import bot.web; print(bot.web.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(venv))  # the wheel's copy, not the work tree

    with running_demo(tmp_path / "data", command=[str(venv / "bin" / "yihu")], cwd=tmp_path) as demo:
        status, page = _fetch(demo.url + "/")
        assert status == 200 and 'data-member="g1m1"' in page and 'data-chat="group:g1"' in page
        assert "村庄模拟器" in page  # the texts too
        for asset in ("simulator.js", "simulator.css", "simulator-map.svg", "base.css"):
            assert _fetch(f"{demo.url}/static/{asset}")[0] == 200
