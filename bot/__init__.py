"""Telegram faces of yihu (python-telegram-bot by default, aiogram the other) and the one renderer both use.

Importing ``bot`` imports no Telegram library: faces are loaded only by the processes that run them.
"""
