"""Delivery: rate-limited, prioritised, retried sending; escalation timers; the outbox sweeper.

Never imports aiogram (its import costs ~165 MB per process) nor any Telegram library: the renderer
yields ready Bot API calls and :mod:`workers.sender` posts them with a plain ``httpx.Client``.
"""
