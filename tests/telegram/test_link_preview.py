"""A reply can go out without a link preview (the /desk login link: a preview fetch would use it up),
through either face, over the wire to the emulator; other replies keep Telegram's default."""

from __future__ import annotations

from typing import Any, cast

from bot import aiogram_face, ptb_face
from bot.conversation import Outcome, Reply
from bot.face import ReplySender
from bot.sandbox.emulator.server import start_emulator


async def _send(face: ReplySender, chat_id: int, tag: str) -> None:
    outcome = Outcome(replies=[Reply(f"{tag} http://x.test/desk/login/t", link_preview=False), Reply(f"{tag} plain")])
    face.send_later(chat_id, outcome, None)
    await face.drain()


async def test_both_faces_send_a_reply_without_a_link_preview() -> None:
    running = await start_emulator(limits=False)
    try:
        emulator = running.emulator
        user = int(emulator.create_user("王网格")["id"])
        emulator.user_sends_text(user, "/start")
        ptb = ptb_face.PtbFace(cast(Any, None), running.token, running.url, None)
        await ptb.application.initialize()
        try:
            await _send(ptb, user, "ptb")
        finally:
            await ptb.application.shutdown()
        bot = aiogram_face.make_bot(running.token, running.url)
        try:
            await _send(aiogram_face.AiogramFace(cast(Any, None), bot), user, "aiogram")
        finally:
            await bot.session.close()
        sent = {c["params"]["text"]: c["params"].get("link_preview_options") for c in emulator.call_log(
            method="sendMessage")}
    finally:
        await running.stop()
        await emulator.close()
    assert sent == {
        "ptb http://x.test/desk/login/t": {"is_disabled": True},
        "ptb plain": None,
        "aiogram http://x.test/desk/login/t": {"is_disabled": True},
        "aiogram plain": None,
    }
