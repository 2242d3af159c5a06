"""The staff's case replies: ``/cases`` (open incidents) and ``/case N`` (the whole story)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.render.format import category_label, join_names, local_time, waiting
from bot.render.texts import cut, t
from bot.render.timeline import event_line
from config.settings import Language, Settings
from groups.model import Purpose


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
    alerted = (Purpose.alert, Purpose.escalation)
    told = [n.recipient for n in detail.notifications if n.purpose in alerted and n.kind == "message"]
    if told:
        lines.append(t(language, "case.told", names=join_names(language, dict.fromkeys(told))))
    if detail.responses:
        answered = [f"{name}（{t(language, f'response.{kind}')}）" if language == "zh"
                    else f"{name} ({t(language, f'response.{kind}')})" for name, kind, _ in detail.responses]
        lines.append(t(language, "case.responses", names=join_names(language, answered)))
    failed = [n.recipient for n in detail.notifications if n.status in ("failed", "unreachable")]
    if failed:
        lines.append(t(language, "case.failed", names=join_names(language, dict.fromkeys(failed))))
    lines += _referral_lines(language, detail.referrals, settings)
    lines += ["", t(language, "case.timeline")]
    lines += [event_line(language, settings, e.at, e.kind, e.actor, e.detail) for e in detail.timeline]
    return cut("\n".join(lines))


def _referral_lines(language: Language, referrals: Sequence[dict[str, Any]], settings: Settings) -> list[str]:
    """Each referral with its department, status and due date (dates in YIHU_TIMEZONE)."""
    if not referrals:
        return []
    lines = ["", t(language, "case.referrals")]
    for referral in referrals:
        department = t(language, f"department.{referral['department']}")
        if referral["done_at"] is not None:
            lines.append(t(language, "case.referral_answered", department=department,
                           done=local_time(referral["done_at"], settings, "%Y-%m-%d")))
        else:
            lines.append(t(language, "case.referral", department=department,
                           status=t(language, f"referral_status.{referral['status']}"),
                           due=local_time(referral["due_at"], settings, "%Y-%m-%d")))
        if referral.get("note"):
            lines.append(t(language, "case.referral_note", note=referral["note"]))
    return lines
