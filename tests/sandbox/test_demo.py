"""``yihu demo`` as a user runs it: the installed command, embedded defaults, no token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workers.embedded_redis import free_port

pytestmark = pytest.mark.timeout(240)


def test_yihu_demo_plays_an_alert_through_and_exits(tmp_path: Path) -> None:
    yihu = shutil.which("yihu", path=str(Path(sys.executable).parent)) or "yihu"
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIHU_")}
    env["YIHU_DATA_DIR"] = str(tmp_path / "data")
    env["YIHU_WEB_LISTEN"] = f"127.0.0.1:{free_port()}"  # the simulator's pages: not the default 8088
    result = subprocess.run(
        [yihu, "demo", "--exit", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    # The operator's lines in YIHU_LANGUAGE (zh by default).
    assert "24 人打开了邀请链接" in out
    assert "正在通知 9 人" in out  # the reporter's confirmation
    assert "事件 #1：状态 acknowledged，2 个回应" in out
    assert "按 Ctrl-C 停止。" in out
    listing = subprocess.run(
        [yihu, "incidents", "--format", "json"], env={**env, "YIHU_DATA_DIR": str(tmp_path / "data" / "demo")},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )
    assert '"status": "acknowledged"' in listing.stdout
