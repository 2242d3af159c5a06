"""Plain calls to the Telegram Bot API that need no bot framework: getMe for the bot's username."""

from __future__ import annotations

import httpx

from config.settings import MissingSetting, Settings


def resolve_bot_username(settings: Settings) -> str:
    """``YIHU_BOT_USERNAME``, else the username getMe reports for ``YIHU_BOT_TOKEN``.

    Raises :class:`MissingSetting` when neither is set or getMe does not answer with a username.
    """
    if settings.bot_username:
        return settings.bot_username.lstrip("@")
    if not settings.bot_token:
        raise MissingSetting(
            "no_username",
            "Invite links need the bot's username: set YIHU_BOT_USERNAME, or YIHU_BOT_TOKEN so it can be asked "
            "from Telegram."
        )
    url = f"{settings.telegram_api_url}/bot{settings.bot_token}/getMe"
    try:
        reply = httpx.get(url, timeout=10.0)
        body = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise MissingSetting(
            "username_unreachable",
            f"Could not ask {settings.telegram_api_url} for the bot's username ({type(exc).__name__}); "
            "set YIHU_BOT_USERNAME.",
            url=settings.telegram_api_url,
            error=type(exc).__name__,
        ) from exc
    username = body.get("result", {}).get("username") if isinstance(body, dict) and body.get("ok") else None
    if not isinstance(username, str) or not username:
        description = body.get("description") if isinstance(body, dict) else None
        reason = description or f"HTTP {reply.status_code}"
        raise MissingSetting(
            "username_refused",
            f"Telegram did not give the bot's username ({reason}); "
            "check YIHU_BOT_TOKEN or set YIHU_BOT_USERNAME.",
            reason=reason,
        )
    return username
