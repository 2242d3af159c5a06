"""``python -m workers [--burst]``: one delivery worker process with the settings from ``YIHU_*``."""

from __future__ import annotations

import argparse
import logging

from config.settings import MissingSetting, get_settings
from workers.process import run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description="yihu delivery worker")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per Bot API call is noise
    try:
        run_worker(get_settings(), burst=args.burst, logging_level=args.log_level)
    except MissingSetting as exc:
        logging.getLogger("workers").error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
