"""Delivery: rate-limited, prioritised, retried sending; escalation timers; the outbox sweeper.

Never imports aiogram (its import costs ~165 MB per process): sending goes through
python-telegram-bot's light ``telegram.Bot``.
"""
