"""Both faces, long polling over HTTP: updates that arrive together are handled as a batch, each once, one
chat's in their order (the emulator holds every getUpdates a moment so that updates pile up, and
delivers every update twice)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from groups.model import Incident, ProcessedUpdate
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
