"""What every rendering of one incident needs, loaded once: the alert text, the tally, its buttons."""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.render.format import category_label, join_names, local_time, person
from bot.render.keyboards import response_buttons
from bot.render.texts import cut, t
from config.settings import Language, Settings
from groups.model import OPEN_STATUSES, Household, HouseholdGroup, Incident, Member, Response, ResponseKind
from workers.channels.telegram import Button


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
                       name=person(language, self.reporter),
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
            lines.append(t(language, "alert.owner", name=person(language, self.owner)))
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
            names.setdefault(response.kind, []).append(person(language, member))
        lines = ["", t(language, "alert.tally", **counts)]
        for kind, people in names.items():
            if people:
                lines.append(t(language, "alert.responders", kind=t(language, f"response.{kind}"),
                               names=join_names(language, people)))
        return lines

    def buttons(self) -> list[list[Button]] | None:
        return response_buttons(self.id) if self.incident.status in OPEN_STATUSES else None
