"""Raising alerts (/sos, 6995, the SOS button, a voice note or location), responses, /cancel, attachments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.conversation import SOS_TEXT, Reply, Router, Turn
from bot.features.alerts.payloads import CATEGORY, RESPOND, SOS, Category, Respond, SendAsSos
from bot.render.format import category_label
from bot.render.keyboards import is_sos_button, sos_keyboard
from bot.render.texts import t
from groups import alerts
from groups.effects import Effects

if TYPE_CHECKING:
    from bot.conversation import Conversation

router = Router("alerts")


def _raise(
    conversation: Conversation,
    turn: Turn,
    category: str | None,
    text: str | None,
    location: tuple[float, float] | None = None,
) -> int:
    result = alerts.raise_alert(
        turn.session, turn.member(), turn.now, category, text, location, settings=conversation.ports.settings
    )
    turn.effects.extend(result.effects)
    return result.incident_id


@router.command("sos", private=False, group=True)
def sos_in_group(conversation: Conversation, turn: Turn, args: str) -> None:
    turn.reply("group.sos_private")


@router.command("sos")
def sos(conversation: Conversation, turn: Turn, args: str) -> None:
    """``/sos [category] [text]``: raised at once; the confirmation comes from the outbox."""
    word, _, rest = args.partition(" ")
    _raise(conversation, turn, word or None, rest or None)


@router.command("cancel")
def cancel(conversation: Conversation, turn: Turn, args: str) -> None:
    result = alerts.cancel_latest(turn.session, turn.member(), turn.now)
    turn.effects.extend(result.effects)
    turn.reply(result.reply_key, **result.params)


def _is_sos(turn: Turn) -> bool:
    text = (turn.incoming.text or "").strip()
    return text == SOS_TEXT or is_sos_button(text)


@router.text(_is_sos)
def sos_text(conversation: Conversation, turn: Turn) -> None:
    """``6995`` or the SOS button."""
    _raise(conversation, turn, None, None)


@router.otherwise
def attach_text(conversation: Conversation, turn: Turn) -> None:
    """Text the reporter sends soon after raising goes to everyone told; otherwise a hint."""
    result = alerts.attach(turn.session, turn.member_or_none(), turn.now, text=turn.incoming.text)
    if result is not None:
        turn.effects.extend(result.effects)
        turn.reply(result.reply_key, **result.params)
    elif conversation.user_info(turn) is None:
        turn.reply("start.how_to_join")
    else:
        turn.reply("hint.no_incident", sos_keyboard(turn.language))


@router.on_media
def attach_media(conversation: Conversation, turn: Turn) -> None:
    """A voice note or location: attached to a fresh open incident, else offered as an SOS (one tap)."""
    incoming = turn.incoming
    assert incoming.message_id is not None
    voice = (incoming.chat_id, incoming.message_id) if incoming.voice else None
    live = None
    if incoming.location is not None and incoming.live_period:
        live = alerts.LiveSource(incoming.chat_id, incoming.message_id, incoming.live_period)
    result = alerts.attach(
        turn.session, turn.member_or_none(), turn.now, voice=voice, location=incoming.location, live=live
    )
    if result is not None:
        turn.effects.extend(result.effects)
        turn.reply(result.reply_key, **result.params)
        return
    if conversation.user_info(turn) is None:
        turn.reply("start.how_to_join")
        return
    if incoming.location is not None:
        offer, key = SendAsSos(location=incoming.location), "attachment.offer_location"
    else:
        offer, key = SendAsSos(voice_message_id=incoming.message_id), "attachment.offer_voice"
    button = {"text": t(turn.language, "attachment.send_as_sos"), "callback_data": offer.data()}
    turn.outcome.replies.append(Reply(t(turn.language, key), {"inline_keyboard": [[button]]}))


@router.on_edited
def move_live_location(conversation: Conversation, turn: Turn) -> None:
    """The reporter's live location moved: the live locations sent to those told follow it (silently).
    Edits of any other message, or by anyone else, change nothing."""
    incoming = turn.incoming
    if incoming.location is None or incoming.message_id is None:
        return
    effects = alerts.move_share(
        turn.session, turn.member_or_none(), incoming.chat_id, incoming.message_id, incoming.location, turn.now
    )
    turn.effects.extend(effects)


# -- buttons -----------------------------------------------------------------------------------------
@router.press(RESPOND, Respond.parse)
def press_response(conversation: Conversation, turn: Turn, press: Respond) -> None:
    result = alerts.respond(turn.session, turn.member(), press.incident_id, press.kind, turn.now)
    turn.effects.extend(result.effects)
    if result.changed:
        turn.answer("answer.recorded", kind=t(turn.language, f"response.{press.kind}"))
    else:
        turn.answer("answer.same")


@router.press(CATEGORY, Category.parse)
def press_category(conversation: Conversation, turn: Turn, press: Category) -> None:
    result = alerts.set_category(turn.session, turn.member(), press.incident_id, press.name, turn.now)
    turn.effects.extend(result.effects)
    label = category_label(turn.language, result.category)
    turn.answer(result.reply_key, **(result.params | {"category": label}))


@router.press(SOS, SendAsSos.parse)
def press_sos(conversation: Conversation, turn: Turn, press: SendAsSos) -> None:
    """The one-tap "send as SOS" offered for a voice note or a location."""
    incoming = turn.incoming
    assert incoming.user_id is not None
    if press.location is not None:
        _raise(conversation, turn, None, None, press.location)
    else:
        assert press.voice_message_id is not None
        _raise(conversation, turn, None, None)
        voice = (incoming.user_id, press.voice_message_id)
        result = alerts.attach(turn.session, turn.member(), turn.now, voice=voice)
        turn.effects.extend(result.effects if result is not None else Effects())
    turn.answer("answer.sos_sent")
