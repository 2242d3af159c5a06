"""Delivery: rate-limited, prioritised, retried sending; escalation timers; the outbox sweeper.

Never imports aiogram (its import costs ~165 MB per process) nor any Telegram library: the renderer
wired from above yields ready Bot API calls and :mod:`workers.channels.telegram` posts them with a plain
``httpx.Client``. Imports nothing of ``bot/``: the app hands the renderer in (``bot.bootstrap``).
"""
