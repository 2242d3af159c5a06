"""Raising alerts (/sos, 6995, the SOS button, a voice note or location), responses, /cancel, attachments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import callbacks, render
from bot.conversation import SOS_TEXT, Reply
from bot.texts import t
from groups import alerts, cases, escalation
from groups.effects import Effects

if TYPE_CHECKING:
    from bot.conversation import Conversation, Turn


def _raise(turn: Turn, category: str | None, text: str | None, location: tuple[float, float] | None = None) -> int:
    assert turn.incoming.user_id is not None
    result = alerts.raise_alert(turn.session, turn.incoming.user_id, turn.now, category, text, location)
    turn.effects.extend(result.effects)
    return result.incident_id


def sos(conversation: Conversation, turn: Turn, args: str) -> None:
    """``/sos [category] [text]``: raised at once; the confirmation comes from the outbox."""
    word, _, rest = args.partition(" ")
    _raise(turn, word or None, rest or None)


def cancel(conversation: Conversation, turn: Turn, args: str) -> None:
    assert turn.incoming.user_id is not None
    result = alerts.cancel_latest(turn.session, turn.incoming.user_id, turn.now)
    turn.effects.extend(result.effects)
    turn.reply(result.reply_key, **result.params)


def sos_text(conversation: Conversation, turn: Turn) -> bool:
    text = (turn.incoming.text or "").strip()
    if text == SOS_TEXT or render.is_sos_button(text):
        _raise(turn, None, None)
        return True
    return False


def attach_text(conversation: Conversation, turn: Turn) -> bool:
    """Text the reporter sends soon after raising goes to everyone told; otherwise a hint."""
    assert turn.incoming.user_id is not None
    result = alerts.attach(turn.session, turn.incoming.user_id, turn.now, text=turn.incoming.text)
    if result is not None:
        turn.effects.extend(result.effects)
        turn.reply(result.reply_key, **result.params)
    elif conversation.user_info(turn) is None:
        turn.reply("start.how_to_join")
    else:
        turn.reply("hint.no_incident", render.sos_keyboard(turn.language))
    return True


def attach_media(conversation: Conversation, turn: Turn) -> bool:
    """A voice note or location: attached to a fresh open incident, else offered as an SOS (one tap)."""
    incoming = turn.incoming
    assert incoming.user_id is not None and incoming.message_id is not None
    voice = (incoming.chat_id, incoming.message_id) if incoming.voice else None
    result = alerts.attach(turn.session, incoming.user_id, turn.now, voice=voice, location=incoming.location)
    if result is not None:
        turn.effects.extend(result.effects)
        turn.reply(result.reply_key, **result.params)
        return True
    if conversation.user_info(turn) is None:
        turn.reply("start.how_to_join")
        return True
    if incoming.location is not None:
        data, key = callbacks.sos_location(*incoming.location), "attachment.offer_location"
    else:
        data, key = callbacks.sos_voice(incoming.message_id), "attachment.offer_voice"
    button = {"text": t(turn.language, "attachment.send_as_sos"), "callback_data": data}
    turn.outcome.replies.append(Reply(t(turn.language, key), {"inline_keyboard": [[button]]}))
    return True


# -- buttons -----------------------------------------------------------------------------------------
def press_response(conversation: Conversation, turn: Turn, press: callbacks.Callback) -> None:
    assert turn.incoming.user_id is not None and press.incident_id is not None and press.value is not None
    result = alerts.respond(turn.session, turn.incoming.user_id, press.incident_id, press.value, turn.now)
    turn.effects.extend(result.effects)
    if result.changed:
        turn.answer("answer.recorded", kind=t(turn.language, f"response.{press.value}"))
    else:
        turn.answer("answer.same")


def press_category(conversation: Conversation, turn: Turn, press: callbacks.Callback) -> None:
    assert turn.incoming.user_id is not None and press.incident_id is not None
    result = alerts.set_category(turn.session, turn.incoming.user_id, press.incident_id, press.value or "", turn.now)
    turn.effects.extend(result.effects)
    turn.answer(result.reply_key, **(result.params | {"category": render.category_label(turn.language,
                                                                                          result.category)}))


def press_ack(conversation: Conversation, turn: Turn, press: callbacks.Callback) -> None:
    assert turn.incoming.user_id is not None and press.incident_id is not None
    result = cases.acknowledge(turn.session, turn.incoming.user_id, press.incident_id, turn.now)
    turn.effects.extend(result.effects)
    turn.answer(result.reply_key, **result.params)


def press_escalate(conversation: Conversation, turn: Turn, press: callbacks.Callback) -> None:
    assert turn.incoming.user_id is not None and press.incident_id is not None
    result = escalation.escalate_manual(
        turn.session, turn.incoming.user_id, press.incident_id, press.value or "police", None, turn.now
    )
    turn.effects.extend(result.effects)
    turn.answer("escalate.done", id=result.incident_id, target=t(turn.language, f"role.{result.target}"))


def press_sos(conversation: Conversation, turn: Turn, press: callbacks.Callback) -> None:
    """The one-tap "send as SOS" offered for a voice note or a location."""
    incoming = turn.incoming
    assert incoming.user_id is not None and press.value is not None
    kind, _, value = press.value.partition(":")
    if kind == "location":
        latitude, longitude = (float(x) for x in value.split(","))
        _raise(turn, None, None, (latitude, longitude))
    else:
        _raise(turn, None, None)
        result = alerts.attach(turn.session, incoming.user_id, turn.now, voice=(incoming.user_id, int(value)))
        turn.effects.extend(result.effects if result is not None else Effects())
    turn.answer("answer.sos_sent")


def register(conversation: Conversation) -> None:
    conversation.private_commands.update({"sos": sos, "cancel": cancel})
    conversation.group_commands.update({"sos": lambda c, turn, a: turn.reply("group.sos_private")})
    conversation.text_handlers.extend([sos_text, attach_text])
    conversation.media_handlers.append(attach_media)
    conversation.callback_actions.update({
        "respond": press_response,
        "category": press_category,
        "ack": press_ack,
        "escalate": press_escalate,
        "sos": press_sos,
    })
