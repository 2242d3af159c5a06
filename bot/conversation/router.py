"""Routers: what a feature answers (commands, texts, media, button presses), declared in one place.

Each feature owns ``router = Router(...)``; the app includes the routers in one visible order
(``bot.bootstrap.ROUTERS``, merged with :meth:`Router.include`), and the first router that matches a
text wins. Exactly one router may say what happens to any other private text (:meth:`Router.otherwise`),
to media (:meth:`Router.on_media`), to edited messages (:meth:`Router.on_edited`) and to the bot's own
membership of a chat (:meth:`Router.on_membership`).
A button's callback data starts with a prefix its feature registered, with the feature's own parser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.conversation.types import Handling, Turn

CommandHandler = Callable[[Handling, Turn, str], None]
TurnHandler = Callable[[Handling, Turn], None]
PressHandler = Callable[[Handling, Turn, Any], None]
Match = Callable[[Turn], bool]
F = TypeVar("F", bound=Callable[..., None])
V = TypeVar("V")

@dataclass(frozen=True)
class Press:
    """A registered button: ``parse`` turns the callback data into the feature's payload (None: forged)."""

    parse: Callable[[str], Any | None]
    handle: PressHandler


@dataclass
class Router:
    """One feature's entry points."""

    name: str
    private_commands: dict[str, CommandHandler] = field(default_factory=dict)
    group_commands: dict[str, CommandHandler] = field(default_factory=dict)
    texts: list[tuple[Match, TurnHandler]] = field(default_factory=list)
    other_text: TurnHandler | None = None
    media: TurnHandler | None = None
    edited: TurnHandler | None = None
    membership: TurnHandler | None = None
    presses: dict[str, Press] = field(default_factory=dict)

    def command(self, *names: str, private: bool = True, group: bool = False) -> Callable[[F], F]:
        """``/name args`` in a private chat (and/or a group chat) calls the handler with ``args``."""

        def register(handler: F) -> F:
            for name in names:
                if private:
                    self.private_commands[name] = handler
                if group:
                    self.group_commands[name] = handler
            return handler

        return register

    def text(self, match: Match) -> Callable[[F], F]:
        """A private text (not a command) for which ``match`` holds."""

        def register(handler: F) -> F:
            self.texts.append((match, handler))
            return handler

        return register

    def otherwise(self, handler: F) -> F:
        """Any private text no router matched."""
        self.other_text = handler
        return handler

    def on_media(self, handler: F) -> F:
        """A voice note or a location in a private chat."""
        self.media = handler
        return handler

    def on_edited(self, handler: F) -> F:
        """An edited private message (a live location moving)."""
        self.edited = handler
        return handler

    def on_membership(self, handler: F) -> F:
        """The bot's own membership of a chat changed (``my_chat_member``: added, left, kicked)."""
        self.membership = handler
        return handler

    def press(self, prefix: str, parse: Callable[[str], Any | None]) -> Callable[[F], F]:
        """A button whose callback data is ``prefix:...``; the handler gets ``parse(data)``."""

        def register(handler: F) -> F:
            self.presses[prefix] = Press(parse, handler)
            return handler

        return register

    def include(self, other: Router) -> Router:
        """Add ``other``'s entry points after this router's (returns self). Two routers claiming the same
        command, prefix, other text or media is a wiring error."""
        _merge(other.name, self.private_commands, other.private_commands)
        _merge(other.name, self.group_commands, other.group_commands)
        _merge(other.name, self.presses, other.presses)
        self.texts.extend(other.texts)
        for slot in ("other_text", "media", "edited", "membership"):
            theirs = getattr(other, slot)
            if theirs is not None:
                if getattr(self, slot) is not None:
                    raise ValueError(f"router {other.name!r}: another router already handles {slot}")
                setattr(self, slot, theirs)
        return self


def prefix_of(data: str) -> str:
    return data.split(":", 1)[0]


def _merge(name: str, table: dict[str, V], own: dict[str, V]) -> None:
    clash = table.keys() & own.keys()
    if clash:
        raise ValueError(f"router {name!r} redefines {sorted(clash)}")
    table.update(own)
