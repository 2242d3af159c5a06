"""A small village built straight from the model, shared by the core tests, and the catalogue's ``say``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from groups.db import get_engine
from groups.directory import linked_member
from groups.model import Grid, GridStaff, Household, HouseholdGroup, Incident, Member, Notification, Role

T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)
GROUP_CHAT = -1001


@dataclass
class Village:
    """Keys -> member ids; ``uid(key)`` is that member's Telegram user id (linked or not); ``actor(session,
    key)`` is the member as the conversation resolves the sender (linked and active, else "not_linked")."""

    engine: Engine
    ids: dict[str, int]

    def uid(self, key: str) -> int:
        return 10_000 + self.ids[key]

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def member(self, session: Session, key: str) -> Member:
        member = session.get(Member, self.ids[key])
        assert member is not None
        return member

    def actor(self, session: Session, key: str) -> Member:
        return linked_member(session, self.uid(key))


def token(key: str) -> str:
    return f"tok-{key}".ljust(20, "x")


def _member(session: Session, key: str, household: Household | None, role: str, linked: bool) -> Member:
    member = Member(
        key=key, name=f"N-{key}", role=role, household_id=household.id if household else None, invite_token=token(key)
    )
    session.add(member)
    session.flush()
    if linked:
        assert member.id is not None
        member.telegram_user_id = 10_000 + member.id
        member.linked_at = T0
    return member


def build_village(url: str) -> Village:
    """Grid lc3: group g1 (head m1; m2, m3; m4 unlinked; chat bound), group g2 (head m5; m6; no chat);
    staff w1, p1, f1, c1. Grid lc4: group g3 (head m7), staff w2, p2. x1 is a linked member of nobody."""
    engine = get_engine(url)
    ids: dict[str, int] = {}
    with Session(engine) as session:
        lc3 = Grid(code="lc3", name="Grid 3", head_ack_s=120, worker_ack_s=300)
        lc4 = Grid(code="lc4", name="Grid 4")
        session.add_all([lc3, lc4])
        session.flush()
        assert lc3.id is not None and lc4.id is not None
        layout = {
            ("g1", lc3.id, GROUP_CHAT): [["m1", "m2"], ["m3"], ["m4"]],
            ("g2", lc3.id, None): [["m5", "m6"]],
            ("g3", lc4.id, None): [["m7", "m8"]],
        }
        for (code, grid_id, chat), households in layout.items():
            group = HouseholdGroup(
                code=code, name=f"Group {code}", grid_id=grid_id, bind_code=f"bind-{code}", chat_id=chat
            )
            session.add(group)
            session.flush()
            for n, keys in enumerate(households):
                household = Household(group_id=group.id or 0, label=f"{code}-{n}")
                session.add(household)
                session.flush()
                for key in keys:
                    ids[key] = _member(session, key, household, Role.villager, linked=key != "m4").id or 0
            group.head_id = ids[households[0][0]]
        staff = {
            "w1": (lc3, "grid_worker"),
            "p1": (lc3, "police"),
            "f1": (lc3, "women_fed"),
            "c1": (lc3, "child_director"),
            "w2": (lc4, "grid_worker"),
            "p2": (lc4, "police"),
        }
        for key, (grid, role) in staff.items():
            ids[key] = _member(session, key, None, role, linked=True).id or 0
            session.add(GridStaff(grid_id=grid.id or 0, member_id=ids[key], role=role))
        ids["x1"] = _member(session, "x1", None, Role.villager, linked=True).id or 0
        session.commit()
    return Village(engine, ids)


def rows(session: Session, incident_id: int) -> list[Notification]:
    query = select(Notification).where(Notification.incident_id == incident_id).order_by(col(Notification.id))
    return list(session.exec(query).all())


def incident(session: Session, incident_id: int) -> Incident:
    found = session.get(Incident, incident_id)
    assert found is not None
    session.refresh(found)
    return found


LOCALES = Path(__file__).resolve().parent.parent.parent / "bot" / "render" / "locales"


def say(key: str, params: dict[str, object]) -> str:
    """The catalogue text for ``key`` in both languages (fails if a placeholder has no value); returns zh."""
    texts = []
    for language in ("en", "zh"):
        catalogue: dict[str, str] = {}
        for name in ("core.yaml", "core2.yaml"):
            catalogue.update(yaml.safe_load((LOCALES / language / name).read_text(encoding="utf-8")))
        texts.append(str(catalogue[key].format(**params)))
    return texts[-1]
