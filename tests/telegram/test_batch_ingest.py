"""Both faces, long polling over HTTP: updates that arrive together are handled as a batch, each once, one
chat's in their order (the emulator holds every getUpdates a moment so that updates pile up, and
delivers every update twice)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from groups.model import DeliveryStatus, Incident, Notification, ProcessedUpdate, Purpose
from tests.support.harness import Village

pytestmark = pytest.mark.timeout(60)

PILE_UP = {"duplicate_update_probability": 1.0, "delay": 0.3, "delay_methods": ["getupdates"]}


async def test_a_polled_batch_is_handled_once_each_in_order_per_chat(
    tmp_path: Path, redis_url: str, framework: str
) -> None:
    config = {"faults": PILE_UP, "seed": 1}
    async with Village(tmp_path, redis_url, framework=framework, workers=0, emulator_config=config) as village:
        await village.link("g1m1", "g1m2")
        sent = [
            await village.say("g1m3", f"/start {village.member('g1m3').invite_token}"),
            await village.say("g1m3", "6995"),  # raised by g1m3 only if their /start was handled first
            await village.say("g1m1", "6995"),
            await village.say("g1m2", "/resolve 999"),  # refused: an answer, nothing else
            await village.say("g1m4", "6995"),  # not linked: told how to join
        ]
        await village.wait("g1m3", 2)
        await village.wait("g1m2", 2)
        await village.wait("g1m4")
        await asyncio.sleep(0.5)  # a duplicate handled twice would have replied by now
        # The greeting once, then the confirmation: the bot sends it itself (no worker runs here).
        assert len(await village.messages("g1m3")) == 2
        assert len(await village.messages("g1m2")) == 2  # the greeting, the refusal
        assert len(await village.messages("g1m4")) == 1
        with village.session() as session:
            reporters = set(session.exec(select(Incident.reporter_id)).all())
            handled = [p.ext_id for p in session.exec(select(ProcessedUpdate).where(ProcessedUpdate.kind == "update"))]
        assert reporters == {village.member("g1m3").id, village.member("g1m1").id}
        ids = {str(s["update"]["update_id"]) for s in sent}
        assert ids <= set(handled) and len(handled) == len(set(handled))
        assert [c for c in await village.client.calls(errors_only=True) if c["error_code"] == 429] == []


async def test_the_bot_sends_a_polled_batchs_confirmations_itself_then_the_workers_the_rest(
    tmp_path: Path, redis_url: str, framework: str
) -> None:
    """Several SOS polled together: the bot claims and sends each reporter's confirmation itself (no worker
    runs yet); the alerts wait in the outbox for the workers, which never send a confirmation again."""
    config = {"faults": {"delay": 0.3, "delay_methods": ["getupdates"]}, "seed": 1}
    async with Village(tmp_path, redis_url, framework=framework, workers=0, emulator_config=config) as village:
        await village.link("g1m2", "g1m3", "g2m1")
        for key in ("g1m2", "g1m3", "g2m1"):
            await village.say(key, "6995")
        for key in ("g1m2", "g1m3", "g2m1"):
            await village.wait(key, 2)  # the greeting, the confirmation
        with village.session() as session:
            rows = session.exec(select(Notification)).all()
        confirmations = [r for r in rows if r.purpose == Purpose.confirmation]
        assert len(confirmations) == 3
        assert all(r.status == DeliveryStatus.sent and r.attempts == 1 for r in confirmations)
        rest = [r for r in rows if r.purpose != Purpose.confirmation]
        assert any(r.status == DeliveryStatus.pending for r in rest)
        assert not any(r.status == DeliveryStatus.sent for r in rest)  # the workers' part (unlinked: unreachable)
        village.start_workers(1)
        await village.wait("g1m2", 3)  # the alert of g1m3's incident, from a worker
        await village.wait("g1m3", 3)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            with village.session() as session:
                statuses = {r.status for r in session.exec(select(Notification)).all()}
            if statuses <= {DeliveryStatus.sent, DeliveryStatus.unreachable}:
                break
            assert asyncio.get_running_loop().time() < deadline, statuses
            await asyncio.sleep(0.2)
        with village.session() as session:
            again = session.exec(select(Notification).where(Notification.purpose == Purpose.confirmation)).all()
            sent = session.exec(select(Notification).where(Notification.status == DeliveryStatus.sent)).all()
        assert [(r.attempts, r.duplicates) for r in again] == [(1, 0)] * 3
        # Nothing went out twice: one message per sent row, besides the three greetings.
        messages = [c for c in await village.client.calls(method="sendMessage") if c.get("ok")]
        assert len(messages) == len(sent) + 3
        assert [c for c in await village.client.calls(errors_only=True) if c["error_code"] == 429] == []
