"""The core of yihu (一呼): roster, incidents, escalation rules and routing.

Knows nothing of Telegram, Redis or RQ: it decides *who* must be told *what* and records it.
"""
