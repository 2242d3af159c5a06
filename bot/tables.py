"""What the ``yihu`` listings print for people: aligned columns (CJK characters take two) and the rows
of the invite and incident listings. Plain strings in, plain strings out: no terminal, no database."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from typing import Any


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as aligned columns under a header line (None shows as ``-``)."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], display_width(value))

    def line(values: Sequence[str]) -> str:
        padded = [v + " " * (w - display_width(v)) for v, w in zip(values, widths, strict=True)]
        return "  ".join(padded).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def members_table(invites: dict[str, Any]) -> str:
    """Each member's invite link (``groups.invites.list_invites``)."""
    return render_table(["key", "name", "link"], [[m["key"], m["name"], m["link"]] for m in invites["members"]])


def groups_table(invites: dict[str, Any]) -> str:
    """Each group's bind command (``groups.invites.list_invites``)."""
    return render_table(
        ["group", "name", "bind with"], [[g["code"], g["name"], f"/bind {g['bind_code']}"] for g in invites["groups"]]
    )


def _tally(view: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for response in view["responses"]:
        counts[response["kind"]] = counts.get(response["kind"], 0) + 1
    return " ".join(f"{kind}:{counts[kind]}" for kind in ("coming", "called", "cant") if kind in counts) or "-"


def _deliveries(view: dict[str, Any]) -> str:
    notifications = view["notifications"]
    sent = sum(1 for n in notifications if n["status"] == "sent")
    return f"{sent}/{len(notifications)}"


def incidents_table(views: Sequence[dict[str, Any]], erased: Callable[[str], str] = str) -> str:
    """One line per incident (``groups.views.list_incidents``); ``erased`` marks a reporter whose personal
    data was erased (``m5 (erased)``)."""
    rows = [
        [
            f"#{v['id']}",
            v["status"],
            v["category"],
            v["group"],
            erased(v["reporter"]) if v["reporter"] in v.get("erased", ()) else v["reporter"],
            (v["created_at"] or "")[:19].replace("T", " "),
            v["escalation_level"],
            v["acknowledged_by"],
            _tally(v),
            _deliveries(v),
        ]
        for v in views
    ]
    headers = ["#", "status", "category", "group", "reporter", "created (UTC)", "level", "ack by", "responses", "sent"]
    return render_table(headers, rows)
