"""Case handling by the head, grid workers and police: /cases, /case, /ack, /escalate, /resolve, /false,
/refer, /referral_done. Who may do what is decided in the core (groups.permissions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.conversation import Reply, Router, Turn
from bot.features.cases.payloads import ACK, ESCALATE, Ack, Escalate
from bot.render.format import local_time
from bot.render.replies import case_text, cases_text
from bot.render.texts import t
from groups import cases, escalation, referrals
from groups.permissions import require_standing

if TYPE_CHECKING:
    from bot.conversation import Conversation

router = Router("cases")

EXAMPLES = {
    "case": "/case 12",
    "ack": "/ack 12",
    "resolve": "/resolve 12",
    "false": "/false 12",
    "escalate": "/escalate 12 police",
    "refer": "/refer 12 women 30",
    "referral_done": "/referral_done 12",
}


def _number(turn: Turn, command: str, args: str) -> tuple[int, str] | None:
    """``N [rest]`` of a case command, after checking the user could use the command at all."""
    require_standing(turn.session, turn.member(), command)
    head, _, rest = args.strip().lstrip("#").partition(" ")
    if not head.isdigit():
        turn.reply("error.usage_number", example=EXAMPLES[command])
        return None
    return int(head), rest.strip()


def _localized(turn: Turn, params: dict[str, Any]) -> dict[str, Any]:
    """Department and target codes shown in the user's language."""
    out = dict(params)
    if out.get("department"):
        out["department"] = t(turn.language, f"department.{out['department']}")
    if out.get("target"):
        out["target"] = t(turn.language, f"role.{out['target']}")
    return out


@router.command("cases")
def list_open(conversation: Conversation, turn: Turn, args: str) -> None:
    summaries = cases.list_cases(turn.session, turn.member(), turn.now)
    turn.outcome.replies.append(Reply(cases_text(turn.language, summaries)))


@router.command("case")
def show(conversation: Conversation, turn: Turn, args: str) -> None:
    parsed = _number(turn, "case", args)
    if parsed is None:
        return
    detail = cases.case_detail(turn.session, turn.member(), parsed[0], turn.now)
    turn.outcome.replies.append(Reply(case_text(turn.language, detail, conversation.ports.settings)))


def _command(name: str, call: Callable[[Turn, int, str], Any]) -> Callable[[Conversation, Turn, str], None]:
    def handler(conversation: Conversation, turn: Turn, args: str) -> None:
        parsed = _number(turn, name, args)
        if parsed is None:
            return
        result = call(turn, *parsed)
        turn.effects.extend(result.effects)
        turn.reply(result.reply_key, **_localized(turn, result.params))

    return handler


def _escalate(turn: Turn, number: int, rest: str) -> Any:
    target, _, reason = rest.partition(" ")
    return escalation.escalate_manual(turn.session, turn.member(), number, target, reason.strip() or None, turn.now)


@router.command("refer")
def refer(conversation: Conversation, turn: Turn, args: str) -> None:
    """``/refer N department [days]``: the reply names the due date as a day in YIHU_TIMEZONE."""
    parsed = _number(turn, "refer", args)
    if parsed is None:
        return
    department, _, days = parsed[1].partition(" ")
    result = referrals.refer(turn.session, turn.member(), parsed[0], department, turn.now, days=days)
    turn.effects.extend(result.effects)
    assert result.due_at is not None
    due = local_time(result.due_at, conversation.ports.settings, "%Y-%m-%d")
    turn.reply(result.reply_key, **_localized(turn, result.params), due=due)


router.command("ack")(
    _command("ack", lambda turn, n, rest: cases.acknowledge(turn.session, turn.member(), n, turn.now))
)
router.command("resolve")(
    _command("resolve", lambda turn, n, rest: cases.resolve(turn.session, turn.member(), n, rest or None, turn.now))
)
router.command("false")(
    _command(
        "false", lambda turn, n, rest: cases.mark_false(turn.session, turn.member(), n, rest or None, turn.now)
    )
)
router.command("escalate")(_command("escalate", _escalate))
router.command("referral_done")(
    _command(
        "referral_done",
        lambda turn, n, rest: referrals.referral_done(turn.session, turn.member(), n, rest or None, turn.now),
    )
)


# -- buttons under an escalation -----------------------------------------------------------------------
@router.press(ACK, Ack.parse)
def press_ack(conversation: Conversation, turn: Turn, press: Ack) -> None:
    result = cases.acknowledge(turn.session, turn.member(), press.incident_id, turn.now)
    turn.effects.extend(result.effects)
    turn.answer(result.reply_key, **result.params)


@router.press(ESCALATE, Escalate.parse)
def press_escalate(conversation: Conversation, turn: Turn, press: Escalate) -> None:
    # A forged target is refused before the user is looked up, as it always was.
    escalation.target_role(press.target)
    result = escalation.escalate_manual(turn.session, turn.member(), press.incident_id, press.target, None, turn.now)
    turn.effects.extend(result.effects)
    turn.answer("escalate.done", id=result.incident_id, target=t(turn.language, f"role.{result.target}"))
