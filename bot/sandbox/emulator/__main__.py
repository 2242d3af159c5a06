"""``python -m bot.sandbox.emulator --host 127.0.0.1 --port 8081 --token 123:ABC``: run the emulator standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from bot.sandbox.emulator.server import DEFAULT_TOKEN, DEFAULT_USERNAME, start_emulator


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox.emulator", description="Telegram Bot API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="default bot token")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="username of the default bot")
    parser.add_argument("--only-token", action="store_true", help="refuse every other token (401)")
    parser.add_argument("--no-limits", action="store_true", help="disable rate limits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-privacy", action="store_true", help="bots see every group message")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    running = await start_emulator(
        args.host,
        args.port,
        default_token=args.token,
        default_username=args.username,
        tokens=[args.token] if args.only_token else None,
        limits=False if args.no_limits else None,
        seed=args.seed,
        privacy_mode=not args.no_privacy,
    )
    print(f"Bot API emulator at {running.url}  (token {args.token}; control API at {running.url}/_emu/)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_run(_parse(argv)))


if __name__ == "__main__":
    main()
