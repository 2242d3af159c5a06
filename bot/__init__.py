"""Telegram faces of yihu (aiogram by default, python-telegram-bot second) and the one renderer both use.

Importing ``bot`` imports no Telegram library: faces are loaded only by the processes that run them.
"""
