"""Who may do what to an incident: the head, the grid worker, the police, a private incident's own
officer (妇联执委 for violence, 儿童主任 for a child), the reporter.

A capacity is a member's standing towards one incident; a command is allowed when the member holds one
of the capacities it needs. Everything else is "not allowed", before anything changes.
"""

from __future__ import annotations

from typing import Final

from sqlmodel import Session, select

from config import policies
from groups.directory import has_grid_role, incident_group, load_incident, member_id
from groups.errors import UserError
from groups.model import GridStaff, HouseholdGroup, Incident, Member, Role

HEAD: Final = "head"
WORKER: Final = "worker"
POLICE: Final = "police"
OFFICER: Final = "officer"  # the women's federation officer / children's director of a private incident
REPORTER: Final = "reporter"

# Police see an incident once it has been escalated to them (level 2).
POLICE_LEVEL: Final[int] = 2

COMMANDS: Final[dict[str, frozenset[str]]] = {
    "cases": frozenset({WORKER, POLICE, OFFICER}),
    "case": frozenset({HEAD, WORKER, POLICE, OFFICER}),
    "ack": frozenset({HEAD, WORKER, POLICE, OFFICER}),
    "resolve": frozenset({HEAD, WORKER, POLICE, OFFICER}),
    "false": frozenset({HEAD, WORKER}),
    "escalate": frozenset({WORKER}),
    "refer": frozenset({WORKER, OFFICER}),
    "referral_done": frozenset({WORKER, OFFICER}),
    "cancel": frozenset({REPORTER}),
}


def capacities(session: Session, member: Member, incident: Incident) -> set[str]:
    """The member's standing towards ``incident``."""
    found: set[str] = set()
    group = incident_group(session, incident)
    if incident.reporter_id == member_id(member):
        found.add(REPORTER)
    if group.head_id == member_id(member) and not incident.private:
        found.add(HEAD)
    if has_grid_role(session, member, group.grid_id, Role.grid_worker.value):
        found.add(WORKER)
    if incident.escalation_level >= POLICE_LEVEL and has_grid_role(session, member, group.grid_id, Role.police.value):
        found.add(POLICE)
    if any(has_grid_role(session, member, group.grid_id, role) for role in officer_roles(incident)):
        found.add(OFFICER)
    return found


def officer_roles(incident: Incident) -> tuple[str, ...]:
    """The officers a private incident's category adds (none for a public incident)."""
    if not incident.private:
        return ()
    category = policies.CATEGORIES.get(incident.category)
    return tuple(str(role) for role in category.private_roles) if category else ()


def require(session: Session, member: Member, incident: Incident, command: str) -> set[str]:
    """The member's capacities, or UserError("not_allowed") when none of them allows ``command``."""
    held = capacities(session, member, incident)
    if not held & COMMANDS[command]:
        raise UserError("not_allowed", command=command)
    return held


def can_acknowledge(session: Session, member: Member, incident: Incident) -> bool:
    """Head, grid worker, or police for an incident escalated to them — never a neighbour."""
    return bool(capacities(session, member, incident) & COMMANDS["ack"])


def authorize(session: Session, actor: Member, incident_id: int, command: str) -> tuple[Incident, set[str]]:
    """The incident (locked) and the actor's capacities towards it, when ``command`` is allowed to them.

    Raises UserError("incident_not_found") or ("not_allowed").
    """
    incident = load_incident(session, incident_id, for_update=True)
    return incident, require(session, actor, incident, command)


def require_standing(session: Session, actor: Member, command: str) -> None:
    """Refuse a case command before looking at any incident when the actor could never use it.

    A villager trying ``/resolve 7`` hears "not allowed", not whether incident #7 exists.
    """
    standing: set[str] = set()
    if session.exec(select(HouseholdGroup.id).where(HouseholdGroup.head_id == member_id(actor))).first():
        standing.add(HEAD)
    roles = set(session.exec(select(GridStaff.role).where(GridStaff.member_id == member_id(actor))).all())
    if Role.grid_worker.value in roles:
        standing.add(WORKER)
    if Role.police.value in roles:
        standing.add(POLICE)
    if roles & {Role.women_fed.value, Role.child_director.value}:
        standing.add(OFFICER)
    if not standing & COMMANDS[command]:
        raise UserError("not_allowed", command=command)
