"""The incident's category: read from the villager's words, changed by the reporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from config import policies
from groups.alerts.recipients import private_staff
from groups.directory import incident_group, is_open, load_incident, member_id
from groups.effects import Effects
from groups.errors import UserError
from groups.escalation import rearm_ladder
from groups.live import stop_shares
from groups.model import Incident, Member, Priority, Purpose
from groups.outbox import add_event, pending_ids, refresh_tallies, tell_members, withdraw_public


@dataclass(frozen=True)
class CategoryResult:
    incident_id: int
    category: str
    changed: bool
    reply_key: str
    effects: Effects = field(default_factory=Effects)

    @property
    def params(self) -> dict[str, Any]:
        return {"number": self.incident_id, "category": self.category}


def parse_category(category: str | None, text: str | None) -> tuple[policies.Category, str | None]:
    """The category a villager named; an unknown word is part of the text (category general)."""
    general = policies.CATEGORIES["general"]
    word = (category or "").strip()
    if not word:
        return general, _clean(text)
    found = policies.find_category(word)
    if found is not None:
        return found, _clean(text)
    return general, _clean(f"{word} {text or ''}")


def _clean(text: str | None) -> str | None:
    return text.strip() or None if text else None


def _own_open_incident(session: Session, actor: Member, number: int) -> Incident:
    incident = load_incident(session, number, for_update=True)
    if incident.reporter_id != member_id(actor):
        raise UserError("not_allowed", command="category")
    if not is_open(incident):
        raise UserError("incident_closed", number=number)
    return incident


def set_category(session: Session, actor: Member, number: int, category: str, now: datetime) -> CategoryResult:
    """The reporter picks or changes the category. A private incident stays private."""
    incident = _own_open_incident(session, actor, number)
    chosen = policies.find_category(category or "")
    if chosen is None:
        raise UserError("bad_category", category=category)
    if incident.private and not chosen.private:
        raise UserError("category_locked", number=number)
    if chosen.name == incident.category:
        return CategoryResult(number, chosen.name, False, "category_unchanged")
    incident.category = chosen.name
    add_event(session, incident, "category", now, actor=actor, detail=chosen.name)
    group = incident_group(session, incident)
    effects = Effects()
    if chosen.private:
        became_private = not incident.private
        incident.private = True
        incident.escalation_level = max(incident.escalation_level, chosen.start_level)
        payload = {"template": "alert", "confidential": True}
        staff = private_staff(session, group, chosen)
        rows = tell_members(
            session, incident, staff, Purpose.alert, Priority.urgent, payload, f"alert:{number}", now
        )
        effects.notifications.extend(pending_ids(rows))
        if became_private:
            effects.notifications.extend(withdraw_public(session, incident, now))
            effects.notifications.extend(stop_shares(session, incident, now, public_only=True))
    effects.extend(rearm_ladder(session, incident, chosen, now))
    session.add(incident)
    effects.notifications.extend(refresh_tallies(session, incident, group.head_id, now))
    return CategoryResult(number, chosen.name, True, "category_set", effects)
