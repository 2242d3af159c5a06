"""What the workers' Telegram channel renders: an outbox row -> the Bot API call that delivers it now.

Texts are rendered when a message is sent, from the state in the database then: a late message shows the
latest tally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from bot.render.facts import IncidentFacts
from bot.render.format import category_label, duration, local_time, member_language, person
from bot.render.keyboards import category_buttons, escalation_buttons
from bot.render.live import LIVE_KINDS, render_live
from bot.render.texts import cut, t
from bot.render.timeline import timeline_line
from config.settings import Language, Settings
from groups.model import (
    OPEN_STATUSES,
    DeliveryStatus,
    Grid,
    Household,
    HouseholdGroup,
    Incident,
    IncidentEvent,
    Member,
    Notification,
    Referral,
)
from groups.outbox import to_staff
from workers.channels import NotReady
from workers.channels.telegram import Button, Outgoing, edit, message


def render_notification(session: Session, notification: Notification, settings: Settings) -> Outgoing | None:
    """The Bot API call that delivers ``notification`` now, or None when nothing is left to send.

    Raises :class:`NotReady` for an edit whose original message has not been sent yet.
    """
    payload = notification.payload or {}
    recipient = session.get(Member, notification.recipient_id) if notification.recipient_id else None
    chat_id = _chat_of(session, notification, recipient)
    if chat_id is None:
        return None
    language = member_language(recipient, settings)
    if notification.kind == "copy":
        return Outgoing("copyMessage", chat_id, {"chat_id": chat_id, "from_chat_id": payload["from_chat_id"],
                                                 "message_id": payload["message_id"]})
    if notification.kind in LIVE_KINDS:
        return render_live(session, notification, chat_id)
    if notification.kind == "location":
        return Outgoing("sendLocation", chat_id, {"chat_id": chat_id, "latitude": payload["latitude"],
                                                  "longitude": payload["longitude"]})
    incident = session.get(Incident, notification.incident_id) if notification.incident_id else None
    facts = IncidentFacts(session, incident) if incident is not None else None
    if notification.kind == "edit":
        return _render_edit(session, notification, facts, settings)
    text, buttons = _render_template(session, payload, facts, language, settings, notification)
    return message(chat_id, text, buttons)


def _chat_of(session: Session, notification: Notification, recipient: Member | None) -> int | None:
    if notification.group_id is not None and notification.recipient_id is None:
        group = session.get(HouseholdGroup, notification.group_id)
        if group is not None and group.chat_id is None:
            return None  # the bot was removed from its chat (groups.onboarding.chat_lost): DMs only now
        return group.chat_id if group and group.chat_id else notification.chat_id
    if recipient is not None and recipient.telegram_user_id is not None:
        return recipient.telegram_user_id
    return notification.chat_id


def _render_edit(
    session: Session, notification: Notification, facts: IncidentFacts | None, settings: Settings
) -> Outgoing | None:
    target = session.get(Notification, (notification.payload or {}).get("edit_of"))
    if target is None or facts is None:
        return None
    if target.telegram_message_id is None:
        if target.status in (DeliveryStatus.pending, DeliveryStatus.sending):
            raise NotReady(f"message {target.id} not sent yet")
        return None  # the original never went out: nothing to edit
    recipient = session.get(Member, target.recipient_id) if target.recipient_id else None
    chat_id = _chat_of(session, target, recipient)
    if chat_id is None:
        return None
    language = member_language(recipient, settings)
    confidential = bool((target.payload or {}).get("confidential"))
    if facts.incident.private and not to_staff(target):
        # The alert became private (家暴/儿童): what the group chat, the head and the neighbours saw is
        # withdrawn; the core's rule (groups.outbox.to_staff) says who keeps seeing it.
        return edit(chat_id, target.telegram_message_id, t(language, "alert.withdrawn", id=facts.id))
    return edit(chat_id, target.telegram_message_id, facts.alert_text(language, settings, confidential),
                facts.buttons())


def _render_template(
    session: Session,
    payload: dict[str, Any],
    facts: IncidentFacts | None,
    language: Language,
    settings: Settings,
    notification: Notification,
) -> tuple[str, list[list[Button]] | None]:
    template = payload.get("template", "alert")
    if template == "chat_lost":
        return _chat_lost(session, payload, language), None
    if facts is None:
        return t(language, "error.generic"), None
    number = facts.id
    match template:
        case "confirmation":
            return _confirmation(payload, facts, language)
        case "alert":
            return facts.alert_text(language, settings, bool(payload.get("confidential"))), facts.buttons()
        case "response":
            responder = session.get(Member, payload.get("responder_id"))
            kind = payload.get("kind", "coming")
            return t(language, f"response.to_reporter.{kind}", name=person(language, responder),
                     id=number), None
        case "unreachable":
            return _unreachable(session, payload, number, language), None
        case "attachment_text":
            return cut(t(language, "attachment.text", id=number,
                         name=person(language, facts.reporter), text=payload.get("text", ""))), None
        case "acknowledged":
            owner = session.get(Member, payload.get("by"))
            role = _role_of(session, owner, facts)
            return t(language, "ack.owner", id=number, name=person(language, owner),
                     role=t(language, f"role.{role}")), None
        case "escalation":
            return _escalation(session, payload, facts, language, settings)
        case "closed":
            status = payload.get("status", "resolved")
            lines = [t(language, f"closed.{status}", id=number)]
            if payload.get("note"):
                lines.append(t(language, "closed.note", note=payload["note"]))
            return cut("\n".join(lines)), None
        case "category_changed":
            return t(language, "category.changed", id=number,
                     category=category_label(language, facts.incident.category)), None
        case "referral_reminder":
            return _referral_reminder(session, payload, number, language, settings), None
        case "referral":
            return _referral(session, payload, facts, language, settings), None
        case "reopened":
            return t(language, "reopened.notice", id=number, name=person(language, facts.reporter),
                     household=facts.household.label if facts.household else "-"), facts.buttons()
        case "misuse":
            return _misuse(session, payload, number, language), None
    raise ValueError(f"unknown template {template!r} in notification {notification.id}")


def _chat_lost(session: Session, payload: dict[str, Any], language: Language) -> str:
    group = session.get(HouseholdGroup, payload.get("group_id"))
    if group is None:
        return t(language, "error.generic")
    reason = payload.get("reason", "forbidden")
    return t(language, f"wire.chat_lost.{reason}", group=group.name, code=group.bind_code)


def _confirmation(
    payload: dict[str, Any], facts: IncidentFacts, language: Language
) -> tuple[str, list[list[Button]] | None]:
    incident = facts.incident
    category = category_label(language, incident.category)
    told = int(payload.get("told", 0))
    # Private as it was when ``told`` was counted (the payload names the staff roles of a private one):
    # the incident may have become private since, and then those counted were neighbours.
    private = bool(payload.get("recipients"))
    if told == 0:
        return t(language, "confirm.nobody", id=facts.id), None
    if payload.get("reopened"):
        key = "confirm.reopened_private" if private else "confirm.reopened"
        return t(language, key, id=facts.id, category=category, told=told), None
    if payload.get("joined"):
        key = "confirm.joined_private" if private else "confirm.joined"
        return t(language, key, id=facts.id, told=told), None
    if private:
        return t(language, "confirm.raised_private", id=facts.id, category=category, told=told), None
    text = t(language, "confirm.raised", id=facts.id, category=category, told=told)
    if incident.category == "general" and incident.status in OPEN_STATUSES:
        text += "\n\n" + t(language, "confirm.pick_category")
        return text, category_buttons(language, facts.id)
    return text, None


def _unreachable(session: Session, payload: dict[str, Any], number: int, language: Language) -> str:
    ids: Sequence[int] = payload.get("member_ids") or []
    lines = [t(language, "unreachable.title", id=number)]
    for member_id in ids:
        member = session.get(Member, member_id)
        if member is None:
            continue
        household = session.get(Household, member.household_id) if member.household_id else None
        lines.append(t(language, "unreachable.line", name=person(language, member),
                       household=household.label if household else "-", phone=member.phone or ""))
    return cut("\n".join(lines))


def _role_of(session: Session, member: Member | None, facts: IncidentFacts) -> str:
    if member is None:
        return "villager"
    if facts.group is not None and facts.group.head_id == member.id:
        return "head"
    return member.role


def _escalation(
    session: Session, payload: dict[str, Any], facts: IncidentFacts, language: Language, settings: Settings
) -> tuple[str, list[list[Button]] | None]:
    incident = facts.incident
    level = int(payload.get("level", incident.escalation_level))
    if payload.get("manual"):
        by = session.get(Member, payload.get("by")) if payload.get("by") else None
        reason = t(language, "escalation.manual", name=person(language, by))
        if payload.get("reason"):
            reason += f" — {payload['reason']}"
    else:
        grid = session.get(Grid, facts.group.grid_id) if facts.group else None
        key, seconds = ("escalation.auto_head", grid.head_ack_s if grid else 0) if level <= 1 else (
            "escalation.auto_worker", grid.worker_ack_s if grid else 0)
        reason = t(language, key, wait=duration(seconds, language))
    lines = [t(language, "escalation.title", id=facts.id, reason=reason), ""]
    lines.append(facts.alert_text(language, settings, incident.private))
    events = session.exec(
        select(IncidentEvent).where(IncidentEvent.incident_id == incident.id).order_by(col(IncidentEvent.at))
    ).all()
    lines += ["", t(language, "escalation.timeline")]
    lines += [timeline_line(session, e, language, settings) for e in events]
    buttons = escalation_buttons(language, facts.id, level) if incident.status in OPEN_STATUSES else None
    return cut("\n".join(lines)), buttons


def _referral_reminder(
    session: Session, payload: dict[str, Any], number: int, language: Language, settings: Settings
) -> str:
    referral = session.get(Referral, payload.get("referral_id"))
    if referral is None:
        return t(language, "error.generic")
    key = "referral.overdue" if payload.get("due") else "referral.reminder"
    return t(language, key, id=number, department=t(language, f"department.{referral.department}"),
             due=local_time(referral.due_at, settings, "%Y-%m-%d"))


def _referral(
    session: Session, payload: dict[str, Any], facts: IncidentFacts, language: Language, settings: Settings
) -> str:
    """The department's staff get the case summary (staff only: a private incident's category is shown)."""
    referral = session.get(Referral, payload.get("referral_id"))
    if referral is None:
        return t(language, "error.generic")
    by = session.get(Member, payload.get("by")) if payload.get("by") else None
    head = t(language, "referral.dm", id=facts.id, by=person(language, by),
             department=t(language, f"department.{referral.department}"),
             due=local_time(referral.due_at, settings, "%Y-%m-%d"))
    return cut(head + "\n\n" + facts.alert_text(language, settings, facts.incident.private))


def _misuse(session: Session, payload: dict[str, Any], number: int, language: Language) -> str:
    member = session.get(Member, payload.get("member_id"))
    household = session.get(Household, member.household_id) if member and member.household_id else None
    return t(language, "misuse.notice", name=person(language, member),
             household=household.label if household else "-", count=int(payload.get("count", 0)),
             window=duration(int(payload.get("window_s", 0)), language), id=number)
