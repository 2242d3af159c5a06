"""The one renderer: outbox rows and core results -> texts and keyboards, as plain data.

Used by both faces and by the workers, so it imports no Telegram library. Texts are rendered when a
message is sent, from the state in the database then: a late message shows the latest tally.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.features.alerts.payloads import RESPONSE_LABELS, Category, Respond
from bot.features.cases.payloads import Ack, Escalate
from bot.texts import cut, t
from config.policies import CATEGORIES, ESCALATION_TARGETS, PICKABLE, TOP_LEVEL, ladder_role
from config.settings import Language, Settings, pick_language
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
    Response,
    ResponseKind,
)
from workers.channels import NotReady
from workers.channels.telegram import Button, Outgoing, edit, message


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(at: datetime, settings: Settings, fmt: str = "%m-%d %H:%M") -> str:
    return at.astimezone(_zone(settings.timezone)).strftime(fmt)


def member_language(member: Member | None, settings: Settings) -> Language:
    return pick_language(member.language_code if member else None, settings.language)


def join_names(language: Language, names: Iterable[str]) -> str:
    """A list of names as written in ``language`` (张三、李四 / Zhang, Li)."""
    return ("、" if language == "zh" else ", ").join(names)


def category_label(language: Language, name: str) -> str:
    return t(language, f"category.{name}")


def response_buttons(incident_id: int) -> list[list[Button]]:
    """One big button per row: 我来了 first, labels bilingual whatever the language."""
    return [
        [{"text": label, "callback_data": Respond(incident_id, kind).data()}]
        for kind, label in RESPONSE_LABELS.items()
    ]


def category_buttons(language: Language, incident_id: int) -> list[list[Button]]:
    buttons = [
        {"text": category_label(language, name), "callback_data": Category(incident_id, name).data()}
        for name in PICKABLE
    ]
    return [buttons[i : i + 3] for i in range(0, len(buttons), 3)]


def escalation_buttons(language: Language, incident_id: int, level: int) -> list[list[Button]]:
    rows = [[{"text": t(language, "button.ack"), "callback_data": Ack(incident_id).data()}]]
    if level < 2:
        rows.append([{"text": t(language, "button.escalate_police"),
                      "callback_data": Escalate(incident_id, "police").data()}])
    return rows


def sos_keyboard(language: Language) -> dict[str, Any]:
    """The persistent reply keyboard: the SOS button first, always."""
    return {
        "keyboard": [[{"text": t(language, "sos_button")}], [{"text": t(language, "help_button")}]],
        "resize_keyboard": True,
        "is_persistent": True,
    }


def is_sos_button(text: str) -> bool:
    return text.strip() in {t(lang, "sos_button") for lang in ("zh", "en")}


def is_help_button(text: str) -> bool:
    return text.strip() in {t(lang, "help_button") for lang in ("zh", "en")}


RESPONSE_KINDS = frozenset(kind.value for kind in ResponseKind)


class IncidentFacts:
    """What every rendering of one incident needs, loaded once."""

    def __init__(self, session: Session, incident: Incident) -> None:
        self.incident = incident
        self.reporter = session.get(Member, incident.reporter_id)
        self.household = (
            session.get(Household, self.reporter.household_id) if self.reporter and self.reporter.household_id else None
        )
        self.group = session.get(HouseholdGroup, incident.group_id)
        self.owner = session.get(Member, incident.acknowledged_by_id) if incident.acknowledged_by_id else None
        rows = session.exec(
            select(Response, Member)
            .join(Member, col(Member.id) == col(Response.member_id))
            .where(Response.incident_id == incident.id)
            .order_by(col(Response.at))
        ).all()
        self.responses: list[tuple[Response, Member]] = list(rows)

    @property
    def id(self) -> int:
        assert self.incident.id is not None
        return self.incident.id

    def alert_text(self, language: Language, settings: Settings, confidential: bool = False) -> str:
        incident = self.incident
        category = category_label(language, incident.category)
        title = "alert.title_private" if confidential or incident.private else "alert.title"
        lines = [t(language, title, id=self.id, category=category)]
        lines.append(t(language, "alert.reporter",
                       name=self.reporter.name if self.reporter else "?",
                       household=self.household.label if self.household else "-",
                       group=self.group.name if self.group else "-"))
        if self.reporter and self.reporter.phone:
            lines.append(t(language, "alert.reporter_phone", phone=self.reporter.phone))
        if incident.text:
            lines.append(t(language, "alert.text", text=incident.text))
        if incident.latitude is not None and incident.longitude is not None:
            lines.append(t(language, "alert.location", latitude=f"{incident.latitude:.5f}",
                           longitude=f"{incident.longitude:.5f}"))
        lines.append(t(language, "alert.time", time=local_time(incident.created_at, settings)))
        lines.extend(self.tally_lines(language))
        if self.owner is not None:
            lines.append(t(language, "alert.owner", name=self.owner.name))
        if incident.status not in OPEN_STATUSES:
            lines.append(t(language, "alert.closed", status=t(language, f"status.{incident.status}")))
        return cut("\n".join(lines))

    def tally_lines(self, language: Language) -> list[str]:
        if not self.responses:
            return []
        counts = {kind.value: 0 for kind in ResponseKind}
        names: dict[str, list[str]] = {kind.value: [] for kind in ResponseKind}
        for response, member in self.responses:
            counts[response.kind] = counts.get(response.kind, 0) + 1
            names.setdefault(response.kind, []).append(member.name)
        lines = ["", t(language, "alert.tally", **counts)]
        for kind, people in names.items():
            if people:
                lines.append(t(language, "alert.responders", kind=t(language, f"response.{kind}"),
                               names=join_names(language, people)))
        return lines

    def buttons(self) -> list[list[Button]] | None:
        return response_buttons(self.id) if self.incident.status in OPEN_STATUSES else None


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
    if facts.incident.private and not confidential:
        # The reporter made a public alert private (家暴/儿童): what the group chat and the head saw is
        # withdrawn, nothing of the case is shown there any more.
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
            return t(language, f"response.to_reporter.{kind}", name=responder.name if responder else "?",
                     id=number), None
        case "unreachable":
            return _unreachable(session, payload, number, language), None
        case "attachment_text":
            return cut(t(language, "attachment.text", id=number,
                         name=facts.reporter.name if facts.reporter else "?", text=payload.get("text", ""))), None
        case "acknowledged":
            owner = session.get(Member, payload.get("by"))
            role = _role_of(session, owner, facts)
            return t(language, "ack.owner", id=number, name=owner.name if owner else "?",
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
    raise ValueError(f"unknown template {template!r} in notification {notification.id}")


def _confirmation(
    payload: dict[str, Any], facts: IncidentFacts, language: Language
) -> tuple[str, list[list[Button]] | None]:
    incident = facts.incident
    category = category_label(language, incident.category)
    if payload.get("joined"):
        return t(language, "confirm.joined", id=facts.id), None
    told = int(payload.get("told", 0))
    if told == 0:
        return t(language, "confirm.nobody", id=facts.id), None
    if incident.private:
        roles = payload.get("recipients") or []
        recipients = join_names(language, (t(language, f"role.{r}") for r in roles))
        return t(language, "confirm.raised_private", id=facts.id, category=category, recipients=recipients), None
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
        lines.append(t(language, "unreachable.line", name=member.name,
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
        reason = t(language, "escalation.manual", name=by.name if by else "?")
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


def timeline_line(session: Session, event: IncidentEvent, language: Language, settings: Settings) -> str:
    actor = session.get(Member, event.actor_id) if event.actor_id else None
    return event_line(language, settings, event.at, event.kind, actor.name if actor else None, event.detail)


def event_line(
    language: Language, settings: Settings, at: datetime, kind: str, actor: str | None, detail: str | None
) -> str:
    """One timeline line; the core records codes (categories, kinds, levels), shown here in words."""
    return t(language, "case.event", time=local_time(at, settings, "%m-%d %H:%M:%S"),
             kind=t(language, f"event.{kind}"), actor=actor or "",
             detail=_event_detail(language, kind, detail)).rstrip()


def _event_detail(language: Language, kind: str, detail: str | None) -> str:
    if not detail:
        return ""
    match kind:
        case "raised" | "category":
            return category_label(language, detail) if detail in CATEGORIES else detail
        case "response":
            return t(language, f"response.{detail}") if detail in RESPONSE_KINDS else detail
        case "escalated":
            target, _, reason = detail.partition(": ")
            on_ladder = target.isdigit() and 1 <= int(target) <= TOP_LEVEL
            role = ladder_role(int(target)) if on_ladder else ESCALATION_TARGETS.get(target, target)
            label = t(language, f"role.{role}")
            return f"→ {label}" + (f" ({reason})" if reason else "")
        case "attachment":
            return join_names(language, (t(language, f"attachment.kind.{k}") for k in detail.split()))
        case "acknowledged":
            return ""
    return detail


def _referral_reminder(
    session: Session, payload: dict[str, Any], number: int, language: Language, settings: Settings
) -> str:
    referral = session.get(Referral, payload.get("referral_id"))
    if referral is None:
        return t(language, "error.generic")
    key = "referral.overdue" if payload.get("due") else "referral.reminder"
    return t(language, key, id=number, department=t(language, f"department.{referral.department}"),
             due=local_time(referral.due_at, settings, "%Y-%m-%d"))


def duration(seconds: int, language: Language) -> str:
    """A span as people say it: seconds under a minute, else whole minutes."""
    if seconds < 60:
        return f"{seconds} 秒" if language == "zh" else f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} 分钟" if language == "zh" else f"{minutes} min"


def waiting(seconds: int, language: Language) -> str:
    minutes, _ = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    if language == "zh":
        return f"{hours}小时{minutes}分" if hours else f"{minutes}分钟"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def cases_text(language: Language, summaries: Sequence[Any]) -> str:
    """``/cases``: open incidents, oldest first (``groups.cases.CaseSummary`` rows)."""
    if not summaries:
        return t(language, "cases.none")
    lines = [t(language, "cases.header", count=len(summaries))]
    for case in summaries:
        lines.append(t(language, "cases.line", id=case.incident_id, category=category_label(language, case.category),
                       status=t(language, f"status.{case.status}"), group=case.group_name,
                       waiting=waiting(case.waiting_s, language)))
    return cut("\n".join(lines))


def case_text(language: Language, detail: Any, settings: Settings) -> str:
    """``/case N``: the whole story (``groups.cases.CaseDetail``)."""
    summary = detail.summary
    lines = [t(language, "case.header", id=summary.incident_id, category=category_label(language, summary.category),
               status=t(language, f"status.{summary.status}"), level=summary.escalation_level)]
    lines.append(t(language, "case.reporter", name=summary.reporter_name, group=summary.group_name))
    if detail.text:
        lines.append(t(language, "alert.text", text=detail.text))
    if detail.latitude is not None and detail.longitude is not None:
        lines.append(t(language, "alert.location", latitude=f"{detail.latitude:.5f}",
                       longitude=f"{detail.longitude:.5f}"))
    if detail.acknowledged_by:
        lines.append(t(language, "alert.owner", name=detail.acknowledged_by))
    told = [n.recipient for n in detail.notifications if n.purpose in ("alert", "escalation") and n.kind == "message"]
    if told:
        lines.append(t(language, "case.told", names=join_names(language, dict.fromkeys(told))))
    if detail.responses:
        answered = [f"{name}（{t(language, f'response.{kind}')}）" if language == "zh"
                    else f"{name} ({t(language, f'response.{kind}')})" for name, kind, _ in detail.responses]
        lines.append(t(language, "case.responses", names=join_names(language, answered)))
    failed = [n.recipient for n in detail.notifications if n.status in ("failed", "unreachable")]
    if failed:
        lines.append(t(language, "case.failed", names=join_names(language, dict.fromkeys(failed))))
    lines += ["", t(language, "case.timeline")]
    lines += [event_line(language, settings, e.at, e.kind, e.actor, e.detail) for e in detail.timeline]
    return cut("\n".join(lines))
