"""``/desk``: a staff member gets a single-use login link to the web desk, sent without a link preview
(a preview fetch would use the link up). Who is staff is the core's rule (groups.desk)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.conversation import Reply, Router, Turn
from bot.render.texts import t
from groups import desk

if TYPE_CHECKING:
    from bot.conversation import Conversation

router = Router("desk")


def login_url(base_url: str, token: str) -> str:
    return f"{base_url}/desk/login/{token}"


@router.command("desk")
def desk_link(conversation: Conversation, turn: Turn, args: str) -> None:
    settings = conversation.ports.settings
    token = desk.issue_login(turn.session, turn.member(), turn.now, settings.desk_link_s)
    url = login_url(settings.public_web_url, token)
    minutes = max(1, round(settings.desk_link_s / 60))
    turn.outcome.replies.append(Reply(t(turn.language, "desk.link", url=url, minutes=minutes), link_preview=False))
