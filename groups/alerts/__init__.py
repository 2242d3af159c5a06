"""The alert loop: raise an SOS, fan it out, record responses, attach what follows, cancel.

Every function writes its rows and returns what the face must reply and the outbox ids to enqueue;
the caller commits once (persist first, send after).
"""

from groups.alerts.attachments import AttachResult, attach
from groups.alerts.category import CategoryResult, parse_category, set_category
from groups.alerts.raising import RaiseResult, cancel_latest, raise_alert
from groups.alerts.recipients import alert_recipients, note_unreachable, private_staff
from groups.alerts.responding import RespondResult, respond
from groups.live import LiveSource, move_share, stop_shares

__all__ = [
    "AttachResult",
    "CategoryResult",
    "LiveSource",
    "RaiseResult",
    "RespondResult",
    "alert_recipients",
    "attach",
    "cancel_latest",
    "move_share",
    "note_unreachable",
    "parse_category",
    "private_staff",
    "raise_alert",
    "respond",
    "set_category",
    "stop_shares",
]
