"""The staff desk (工作台): login by a single-use link the bot sends on ``/desk``, server-side sessions, and
what a session may see — the same people and incidents the person may see in Telegram.

Links and session ids are random (``secrets``, 192 bits); only their SHA-256 is stored, so a copy of the
database opens nothing. A link is good once, for ``valid_s`` seconds; a session for ``session_s``. Bad,
used or expired links are counted per client address: past the limit the login answers "limited".

Scope (:class:`Scope`): a grid worker sees their grids; a head their group's non-private incidents;
police what was escalated to them (:data:`groups.permissions.POLICE_LEVEL`); the women's federation
officer / children's director the private incidents of their category in their grid
(:func:`groups.permissions.officer_roles`); a department's staff (民政, 检察院, and the two officers) the
incidents referred to their department in their grid. Anything else is "incident_not_found", as if it did
not exist. Every desk view of a private incident's contents is written to its timeline (``viewed``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from config import policies
from groups.directory import can_be_told, member_id
from groups.errors import UserError
from groups.model import (
    OPEN_STATUSES,
    DeskLogin,
    DeskLoginFailure,
    DeskSession,
    Grid,
    GridStaff,
    Household,
    HouseholdGroup,
    Incident,
    IncidentEvent,
    LiveLocation,
    Member,
    Notification,
    Referral,
    Response,
    ResponseKind,
    Role,
)
from groups.outbox import add_event
from groups.permissions import POLICE_LEVEL, officer_roles
from groups.views import incident_views

TOKEN_BYTES: Final[int] = 24  # 192 bits, URL-safe: 32 characters
DEFAULT_LINK_S: Final[float] = 600
DEFAULT_SESSION_S: Final[float] = 12 * 3600
VIEWED: Final[str] = "viewed"  # the timeline kind of a desk view of a private incident
# The roles a referral to a department reaches (民政, 检察院, and the two officers for theirs).
DEPARTMENT_OF_ROLE: Final[dict[str, str]] = {str(role): dep for dep, role in policies.REFERRAL_ROLES.items()}
STAFF_ROLES: Final[frozenset[str]] = frozenset(str(role) for role in policies.STAFF_ROLES)
RESPONDING: Final[frozenset[str]] = frozenset({ResponseKind.coming.value, ResponseKind.called.value})


def digest(secret: str) -> str:
    """What is stored of a link or a session id."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# --- login links and sessions ---------------------------------------------------------------------------


def is_staff(session: Session, member: Member) -> bool:
    """A center household head or a member holding a staff role in some grid."""
    mid = member_id(member)
    if session.exec(select(HouseholdGroup.id).where(HouseholdGroup.head_id == mid)).first() is not None:
        return True
    roles = session.exec(select(GridStaff.role).where(GridStaff.member_id == mid)).all()
    return any(role in STAFF_ROLES for role in roles)


def issue_login(session: Session, member: Member, now: datetime, valid_s: float = DEFAULT_LINK_S) -> str:
    """A new single-use login token for a staff member (the bot puts it in ``/desk/login/<token>``).

    Raises UserError("not_allowed") for anyone else (a villager, an inactive member)."""
    if not member.active or member.erased_at is not None or not is_staff(session, member):
        raise UserError("not_allowed", command="desk")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        DeskLogin(
            token_hash=digest(token),
            member_id=member_id(member),
            created_at=now,
            expires_at=now + timedelta(seconds=valid_s),
        )
    )
    session.flush()
    return token


@dataclass(frozen=True)
class Login:
    """The outcome of opening a login link: a new session id, or why not (``unknown`` | ``used`` |
    ``expired`` | ``limited``)."""

    session_id: str | None = None
    refused: str | None = None
    member_id: int | None = None


def redeem_login(
    session: Session,
    token: str,
    address: str,
    now: datetime,
    *,
    session_s: float = DEFAULT_SESSION_S,
    failures: int = 10,
    window_s: float = 600,
) -> Login:
    """Open a login link: once, before it expires, and not from an address that failed ``failures`` times
    in the last ``window_s`` seconds. A refusal is counted for the address (the caller commits either way)."""
    since = now - timedelta(seconds=window_s)
    session.execute(delete(DeskLoginFailure).where(col(DeskLoginFailure.at) < since))
    failed = session.exec(
        select(func.count()).select_from(DeskLoginFailure).where(DeskLoginFailure.address == address[:64])
    ).one()
    if failed >= failures:
        return Login(refused="limited")
    refused = _check_token(session, token, now)
    if refused is not None:
        session.add(DeskLoginFailure(address=address[:64], at=now))
        session.flush()
        return Login(refused=refused)
    login = session.exec(select(DeskLogin).where(DeskLogin.token_hash == digest(token))).one()
    # Used once: of two browsers opening the link at the same moment, one wins.
    claimed = session.execute(
        update(DeskLogin).where(col(DeskLogin.id) == login.id, col(DeskLogin.used_at).is_(None)).values(used_at=now)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        session.add(DeskLoginFailure(address=address[:64], at=now))
        return Login(refused="used")
    session_id = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        DeskSession(
            session_hash=digest(session_id),
            member_id=login.member_id,
            created_at=now,
            expires_at=now + timedelta(seconds=session_s),
        )
    )
    session.execute(delete(DeskSession).where(col(DeskSession.expires_at) < now))
    session.execute(delete(DeskLogin).where(col(DeskLogin.expires_at) < now - timedelta(days=1)))
    session.flush()
    return Login(session_id=session_id, member_id=login.member_id)


def _check_token(session: Session, token: str, now: datetime) -> str | None:
    if not token or len(token) > 128:
        return "unknown"
    login = session.exec(select(DeskLogin).where(DeskLogin.token_hash == digest(token))).first()
    if login is None:
        return "unknown"
    if login.used_at is not None:
        return "used"
    if now >= login.expires_at:
        return "expired"
    member = session.get(Member, login.member_id)
    if member is None or not member.active or member.erased_at is not None or not is_staff(session, member):
        return "unknown"
    return None


def session_member(session: Session, session_id: str | None, now: datetime) -> Member | None:
    """The staff member of a live desk session (None: no session, expired, or no longer staff)."""
    if not session_id or len(session_id) > 128:
        return None
    found = session.exec(select(DeskSession).where(DeskSession.session_hash == digest(session_id))).first()
    if found is None or now >= found.expires_at:
        return None
    member = session.get(Member, found.member_id)
    if member is None or not member.active or member.erased_at is not None or not is_staff(session, member):
        return None
    return member


def end_session(session: Session, session_id: str) -> None:
    session.execute(delete(DeskSession).where(col(DeskSession.session_hash) == digest(session_id)))


# --- scope ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What one staff member may see, loaded once per request."""

    member_id: int
    head_groups: frozenset[int] = frozenset()
    worker_grids: frozenset[int] = frozenset()
    police_grids: frozenset[int] = frozenset()
    officer_grids: dict[str, frozenset[int]] = field(default_factory=dict)  # women_fed / child_director
    referred: frozenset[int] = frozenset()  # incidents referred to the member's departments, their grids
    grids: frozenset[int] = frozenset()  # every grid the member holds a staff role in

    def sees(self, incident: Incident, group: HouseholdGroup) -> bool:
        """The rules of :func:`groups.permissions.capacities` (head, worker, police, officer) plus the
        departments an incident was referred to."""
        grid = group.grid_id
        return (
            grid in self.worker_grids
            or (incident.group_id in self.head_groups and not incident.private)
            or (grid in self.police_grids and incident.escalation_level >= POLICE_LEVEL)
            or any(grid in self.officer_grids.get(role, frozenset()) for role in officer_roles(incident))
            or incident.id in self.referred
        )


def scope_of(session: Session, member: Member) -> Scope:
    mid = member_id(member)
    heads = session.exec(select(HouseholdGroup).where(HouseholdGroup.head_id == mid)).all()
    staff = session.exec(select(GridStaff).where(GridStaff.member_id == mid)).all()
    by_role: dict[str, set[int]] = {}
    for row in staff:
        by_role.setdefault(row.role, set()).add(row.grid_id)
    referred: set[int] = set()
    for role, department in DEPARTMENT_OF_ROLE.items():
        grids = by_role.get(role)
        if not grids:
            continue
        query = (
            select(Referral.incident_id)
            .join(Incident, col(Incident.id) == Referral.incident_id)
            .join(HouseholdGroup, col(HouseholdGroup.id) == Incident.group_id)
            .where(Referral.department == department, col(HouseholdGroup.grid_id).in_(sorted(grids)))
        )
        referred.update(session.exec(query).all())
    return Scope(
        member_id=mid,
        head_groups=frozenset(g.id for g in heads if g.id is not None),
        worker_grids=frozenset(by_role.get(Role.grid_worker.value, ())),
        police_grids=frozenset(by_role.get(Role.police.value, ())),
        officer_grids={
            role: frozenset(by_role.get(role, ())) for role in (Role.women_fed.value, Role.child_director.value)
        },
        referred=frozenset(referred),
        grids=frozenset(g.grid_id for g in heads) | frozenset(row.grid_id for row in staff),
    )


def _visible(session: Session, scope: Scope, *, open_only: bool = False) -> list[tuple[Incident, HouseholdGroup]]:
    """The incidents the scope sees (oldest first); only the grids it touches are read."""
    if not scope.grids:
        return []
    query = (
        select(Incident, HouseholdGroup)
        .join(HouseholdGroup, col(HouseholdGroup.id) == Incident.group_id)
        .where(col(HouseholdGroup.grid_id).in_(sorted(scope.grids)))
        .order_by(col(Incident.created_at), col(Incident.id))
    )
    if open_only:
        query = query.where(col(Incident.status).in_([s.value for s in OPEN_STATUSES]))
    return [(incident, group) for incident, group in session.exec(query).all() if scope.sees(incident, group)]


def visible_incident(session: Session, viewer: Member, number: int) -> Incident:
    """Incident ``#number`` when the viewer may see it, else UserError("incident_not_found") — the same
    answer as for a number that does not exist."""
    incident = session.get(Incident, number)
    group = session.get(HouseholdGroup, incident.group_id) if incident is not None else None
    if incident is None or group is None or not scope_of(session, viewer).sees(incident, group):
        raise UserError("incident_not_found", number=number)
    return incident


def record_view(session: Session, incident: Incident, viewer: Member, now: datetime, where: str) -> None:
    """A private incident's timeline keeps who looked at it on the desk, and when (``where``: page | api)."""
    if incident.private:
        add_event(session, incident, VIEWED, now, actor=viewer, detail=f"desk {where}")


# --- what the pages show --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeskRow:
    """One line of the desk's incident list."""

    incident_id: int
    status: str
    category: str
    private: bool
    group_code: str
    group_name: str
    created_at: datetime
    age_s: int
    responders: tuple[str, ...]  # names of those coming or who called for help
    level: int
    owner: str | None  # who acknowledged it
    closed_at: datetime | None


@dataclass(frozen=True)
class DeskList:
    open: list[DeskRow]
    closed: list[DeskRow]  # the most recently closed first


def desk_list(session: Session, viewer: Member, now: datetime, recent: int = 20) -> DeskList:
    """Open incidents (oldest first), then the ``recent`` last closed ones the viewer may see. The list
    names categories and groups only: it is not a view of a private incident's contents."""
    scope = scope_of(session, viewer)
    pairs = _visible(session, scope)
    open_pairs = [(i, g) for i, g in pairs if i.status in OPEN_STATUSES]
    closed_pairs = sorted(
        (p for p in pairs if p[0].status not in OPEN_STATUSES),
        key=lambda p: (p[0].closed_at or p[0].created_at, p[0].id or 0),
        reverse=True,
    )[:recent]
    rows = _rows(session, open_pairs + closed_pairs, now)
    return DeskList(rows[: len(open_pairs)], rows[len(open_pairs) :])


def open_rows(session: Session, viewer: Member, now: datetime) -> list[DeskRow]:
    """The viewer's open incidents (the live updates of ``/desk``)."""
    return _rows(session, _visible(session, scope_of(session, viewer), open_only=True), now)


def _rows(session: Session, pairs: list[tuple[Incident, HouseholdGroup]], now: datetime) -> list[DeskRow]:
    ids = [i.id for i, _ in pairs if i.id is not None]
    responders: dict[int, list[str]] = {}
    if ids:
        query = (
            select(Response.incident_id, Member.name)
            .join(Member, col(Member.id) == Response.member_id)
            .where(col(Response.incident_id).in_(ids), col(Response.kind).in_(sorted(RESPONDING)))
            .order_by(col(Response.at))
        )
        for number, name in session.exec(query).all():
            responders.setdefault(number, []).append(name)
    owners = {m.id: m.name for m in _members(session, {i.acknowledged_by_id for i, _ in pairs})}
    return [
        DeskRow(
            incident_id=incident.id or 0,
            status=str(incident.status),
            category=incident.category,
            private=incident.private,
            group_code=group.code,
            group_name=group.name,
            created_at=incident.created_at,
            age_s=max(0, int(((incident.closed_at or now) - incident.created_at).total_seconds())),
            responders=tuple(responders.get(incident.id or 0, ())),
            level=incident.escalation_level,
            owner=owners.get(incident.acknowledged_by_id),
            closed_at=incident.closed_at,
        )
        for incident, group in pairs
    ]


def _members(session: Session, ids: set[int | None]) -> list[Member]:
    wanted = sorted(i for i in ids if i is not None)
    return list(session.exec(select(Member).where(col(Member.id).in_(wanted))).all()) if wanted else []


@dataclass(frozen=True)
class Point:
    """A place on the incident's map: ``kind`` is ``incident`` (its shared location), ``live`` (a live
    location's last position) or ``other`` (another recent incident of the grid the viewer may see)."""

    latitude: float
    longitude: float
    kind: str
    incident_id: int


@dataclass(frozen=True)
class Detail:
    """One incident as the desk's page shows it (names, not keys)."""

    row: DeskRow
    grid_name: str
    reporter: str
    text: str | None
    acknowledged_at: datetime | None
    timeline: list[tuple[datetime, str, str | None, str | None]]  # at, kind, actor name, detail
    responses: list[tuple[str, str, datetime]]  # name, kind, at
    notifications: list[tuple[str, str, str, str, datetime | None]]  # recipient, purpose, kind, status, sent
    referrals: list[tuple[str, datetime, datetime | None]]  # department, due, done
    points: list[Point]


def incident_detail(
    session: Session, viewer: Member, number: int, now: datetime, recent_days: float = 30
) -> Detail:
    """``/desk/incidents/N`` (recorded on a private incident's timeline; the caller commits)."""
    incident = visible_incident(session, viewer, number)
    record_view(session, incident, viewer, now, "page")
    group = session.get(HouseholdGroup, incident.group_id)
    assert group is not None
    grid = session.get(Grid, group.grid_id)
    events = session.exec(
        select(IncidentEvent).where(IncidentEvent.incident_id == number).order_by(col(IncidentEvent.id))
    ).all()
    responses = session.exec(select(Response).where(Response.incident_id == number).order_by(col(Response.at))).all()
    notes = session.exec(
        select(Notification).where(Notification.incident_id == number).order_by(col(Notification.id))
    ).all()
    referrals = session.exec(select(Referral).where(Referral.incident_id == number).order_by(col(Referral.id))).all()
    people = {m.id: m.name for m in _members(
        session,
        {incident.reporter_id, *(e.actor_id for e in events), *(r.member_id for r in responses),
         *(n.recipient_id for n in notes)},
    )}
    return Detail(
        row=_rows(session, [(incident, group)], now)[0],
        grid_name=grid.name if grid is not None else "",
        reporter=people.get(incident.reporter_id, "?"),
        text=incident.text,
        acknowledged_at=incident.acknowledged_at,
        timeline=[(e.at, e.kind, people.get(e.actor_id) if e.actor_id else None, e.detail) for e in events],
        responses=[(people.get(r.member_id, "?"), r.kind, r.at) for r in responses],
        notifications=[
            (people.get(n.recipient_id, "?") if n.recipient_id is not None else f"group:{group.code}",
             n.purpose, n.kind, n.status, n.sent_at)
            for n in notes
        ],
        referrals=[(r.department, r.due_at, r.done_at) for r in referrals],
        points=_points(session, viewer, incident, group, now - timedelta(days=recent_days)),
    )


def _points(
    session: Session, viewer: Member, incident: Incident, group: HouseholdGroup, since: datetime
) -> list[Point]:
    number = incident.id or 0
    points: list[Point] = []
    if incident.latitude is not None and incident.longitude is not None:
        points.append(Point(incident.latitude, incident.longitude, "incident", number))
    live = session.exec(select(LiveLocation).where(LiveLocation.incident_id == number)).all()
    points.extend(Point(row.latitude, row.longitude, "live", number) for row in live)
    scope = scope_of(session, viewer)
    query = (
        select(Incident, HouseholdGroup)
        .join(HouseholdGroup, col(HouseholdGroup.id) == Incident.group_id)
        .where(
            HouseholdGroup.grid_id == group.grid_id,
            col(Incident.id) != number,
            col(Incident.latitude).is_not(None),
            col(Incident.longitude).is_not(None),
            col(Incident.created_at) >= since,
        )
    )
    for other, other_group in session.exec(query).all():
        if scope.sees(other, other_group) and other.latitude is not None and other.longitude is not None:
            points.append(Point(other.latitude, other.longitude, "other", other.id or 0))
    return points


def incident_json(session: Session, viewer: Member, number: int, now: datetime) -> dict[str, Any]:
    """``GET /api/incidents/N``: the incident in the shape of ``yihu incidents --format json``."""
    incident = visible_incident(session, viewer, number)
    record_view(session, incident, viewer, now, "api")
    return incident_views(session, [incident])[0]


def incidents_json(session: Session, viewer: Member, now: datetime, status: str | None = None) -> list[dict[str, Any]]:
    """``GET /api/incidents``: every incident the viewer may see, oldest first, in the shape of
    ``yihu incidents --format json``; the private ones among them are recorded as viewed."""
    incidents = [i for i, _ in _visible(session, scope_of(session, viewer)) if status is None or i.status == status]
    for incident in incidents:
        record_view(session, incident, viewer, now, "api")
    return incident_views(session, incidents)


@dataclass(frozen=True)
class GroupHealth:
    """``/desk/health``: one group as a head or grid worker checks it. ``away`` and ``backup`` stay None
    until members can be away and groups have a backup."""

    code: str
    name: str
    grid: str
    households: int
    members: int
    linked: int
    reachable: int
    unreachable: int
    chat_bound: bool
    head: str | None
    head_reachable: bool
    away: int | None = None
    backup: str | None = None


def group_health(session: Session, viewer: Member) -> list[GroupHealth]:
    """The groups a head leads and the groups of a grid worker's grids (as ``/health`` in the bot)."""
    scope = scope_of(session, viewer)
    if not scope.head_groups and not scope.worker_grids:
        return []
    groups = session.exec(
        select(HouseholdGroup)
        .where(
            col(HouseholdGroup.active).is_(True),
            col(HouseholdGroup.id).in_(sorted(scope.head_groups)) | col(HouseholdGroup.grid_id).in_(
                sorted(scope.worker_grids)
            ),
        )
        .order_by(col(HouseholdGroup.code))
    ).all()
    grids = {g.id: g.name for g in session.exec(select(Grid)).all()}
    found: list[GroupHealth] = []
    for group in groups:
        households = session.exec(
            select(Household).where(Household.group_id == group.id, col(Household.active).is_(True))
        ).all()
        house_ids = [h.id for h in households if h.id is not None]
        members = (
            session.exec(
                select(Member).where(col(Member.household_id).in_(house_ids), col(Member.active).is_(True))
            ).all()
            if house_ids
            else []
        )
        head = session.get(Member, group.head_id) if group.head_id is not None else None
        found.append(
            GroupHealth(
                code=group.code,
                name=group.name,
                grid=grids.get(group.grid_id, ""),
                households=len(households),
                members=len(members),
                linked=sum(1 for m in members if m.telegram_user_id is not None),
                reachable=sum(1 for m in members if can_be_told(m)),
                unreachable=sum(1 for m in members if m.telegram_user_id is not None and not can_be_told(m)),
                chat_bound=group.chat_id is not None,
                head=head.name if head is not None and head.active else None,
                head_reachable=head is not None and can_be_told(head),
            )
        )
    return found


def changes_marker(session: Session, viewer: Member, now: datetime) -> tuple[Any, ...]:
    """What the live view compares between polls: the viewer's open rows (ages in whole minutes)."""
    return tuple(
        (r.incident_id, r.status, r.category, r.level, r.owner, r.responders, r.age_s // 60)
        for r in open_rows(session, viewer, now)
    )
