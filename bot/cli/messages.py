"""What the ``yihu`` commands say to the operator, in ``YIHU_LANGUAGE`` (zh by default, en complete).

Texts are the catalogue's (``bot/render/locales/*/ops.yaml``), as plain text. The catalogue is loaded
on the first message, not at import: ``bot.render`` would load SQLModel for ``yihu --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from config.settings import Language, get_settings

if TYPE_CHECKING:
    from groups.errors import UserError
    from groups.roster import RosterProblem


def language() -> Language:
    """The operator's language: ``YIHU_LANGUAGE``."""
    return get_settings().language


def say(text_key: str, /, **params: Any) -> str:
    """The text ``text_key`` in the operator's language."""
    from bot.render.texts import plain  # noqa: PLC0415  (lazy: see the module docstring)

    return plain(language(), text_key, **params)


def refusal(error: UserError) -> str:
    """A core refusal (``groups.errors.UserError``) in the operator's language."""
    return say(error.key, **error.params)


def roster_problem(problem: RosterProblem, lang: Language | None = None) -> str:
    """One roster problem as a line, its path first: ``grids[0].groups[1].head: m9 is not a member ...``."""
    from bot.render.texts import plain  # noqa: PLC0415  (lazy: see the module docstring)

    lang = lang or language()
    params = dict(problem.params)
    if "kind" in params:
        params["kind"] = plain(lang, f"roster.kind.{params['kind']}")
    text = plain(lang, problem.key, **params)
    if problem.path is None:
        return text
    return f"{problem.path or plain(lang, 'roster.top_level')}: {text}"
