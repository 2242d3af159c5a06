"""Conversation features, one package each: ``router`` (its handlers) and ``payloads`` (its buttons).

The app includes the routers in one visible order (``bot.bootstrap.ROUTERS``).
"""
