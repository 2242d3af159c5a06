"""The one renderer: outbox rows and core results -> texts and keyboards, as plain data.

Used by both faces and by the workers, so it imports no Telegram library. One concern per module:
``texts`` (the catalogue, ``locales/<lang>/*.yaml``), ``format`` (times, names, durations), ``keyboards``
(inline buttons and the SOS reply keyboard), ``facts`` (what every rendering of one incident needs),
``notifications`` (outbox rows -> Bot API calls), ``timeline`` (event lines), ``replies`` (the /cases and
/case texts).
"""

from bot.render.notifications import render_notification

__all__ = ["render_notification"]
