"""``python -m bot.worker [--burst]``: one delivery worker process with the settings from ``YIHU_*``.

Started by :func:`bot.bootstrap.start_worker_processes`; the wiring is :func:`bot.bootstrap.run_worker_process`.
"""

from __future__ import annotations

import os
import sys

# Below the bot face: at start the face's imports (aiogram: seconds of CPU) compete with the workers' on
# a small machine, and serving users comes first; under load the face persists the SOS the workers
# then deliver. Set before the heavy imports below.
NICE = 5
os.nice(NICE)

# httpx imports its command-line client (rich, pygments, click: ~3 MB per process) whenever those happen
# to be installed (the yihu CLI brings them); a worker never runs it, and httpx falls back on ImportError.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import argparse  # noqa: E402
import logging  # noqa: E402

from bot.bootstrap import run_worker_process  # noqa: E402
from config.settings import MissingSetting, get_settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.worker", description="yihu delivery worker")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per Bot API call is noise
    try:
        run_worker_process(get_settings(), burst=args.burst, logging_level=args.log_level)
    except MissingSetting as exc:
        logging.getLogger("workers").error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
