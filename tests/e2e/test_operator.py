"""The operator's commands as run: ``yihu members relink|rotate-token|forget``, ``yihu groups unbind``,
``yihu backup`` (PostgreSQL refusal; the live copy is in test_backup.py), and every operator message in
``YIHU_LANGUAGE``: Chinese by default, English complete."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from bot.render.texts import catalogue
from config.settings import get_settings
from groups.db import get_engine, session_scope
from groups.model import HouseholdGroup, Incident, IncidentEvent, Member
from groups.roster import parse as roster_parse
from tests.e2e.test_cli import DATA, env, invites_json, run

__all__ = ["env"]  # the fixture, shared with test_cli.py
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")
LINK = re.compile(r"https://t\.me/yihu_test_bot\?start=([A-Za-z0-9_-]{16,64})")


def _database() -> str:
    return get_settings().resolved_database_url


def _dump() -> str:
    """Every row of every table, to show that a refused command changed nothing."""
    with get_engine(_database()).connect() as connection:
        tables = inspect(connection).get_table_names()
        rows = {t: [list(r) for r in connection.execute(text(f'SELECT * FROM "{t}"'))] for t in tables}
    return json.dumps(rows, ensure_ascii=False, default=str)


def _link(key: str, user: int) -> None:
    with session_scope(get_engine(_database())) as s:
        member = s.exec(select(Member).where(Member.key == key)).one()
        member.telegram_user_id = user
        member.linked_at = datetime.now(UTC)


def _bind(code: str, chat: int) -> None:
    with session_scope(get_engine(_database())) as s:
        group = s.exec(select(HouseholdGroup).where(HouseholdGroup.code == code)).one()
        group.chat_id = chat


def _incident(reporter: str, status: str, text_: str) -> int:
    with session_scope(get_engine(_database())) as s:
        member = s.exec(select(Member).where(Member.key == reporter)).one()
        group = s.exec(select(HouseholdGroup).where(HouseholdGroup.code == "g2")).one()
        assert member.id is not None and group.id is not None
        incident = Incident(group_id=group.id, reporter_id=member.id, status=status, text=text_)
        s.add(incident)
        s.flush()
        assert incident.id is not None
        s.add(IncidentEvent(incident_id=incident.id, kind="raised", actor_id=member.id, detail="general"))
        return incident.id


def _token(key: str) -> str:
    return str({m["key"]: m["token"] for m in invites_json()["members"]}[key])


@pytest.fixture
def village(env: dict[str, str]) -> dict[str, str]:
    result = run("roster", "import", str(DATA / "roster.yaml"))
    assert result.exit_code == 0, result.stderr
    return env


def _refused(args: tuple[str, ...], *expected: str) -> str:
    """The command exits 1 with one refusal on stderr containing ``expected``, and changes nothing."""
    before = _dump()
    result = run(*args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    for words in expected:
        assert words in result.stderr, result.stderr
    assert _dump() == before
    return str(result.stderr)


def test_relink_and_rotate_token_in_chinese(village: dict[str, str]) -> None:
    _link("m2", 4242)
    old = _token("m2")

    relinked = run("members", "relink", "m2")

    assert relinked.exit_code == 0, relinked.stderr
    assert "m2：已解除 Telegram 绑定（原为 Telegram 用户 4242）" in relinked.stdout
    (new,) = LINK.findall(relinked.stdout)
    assert "新邀请链接：" in relinked.stdout and new == _token("m2") != old

    _link("m1", 4343)
    _refused(("members", "rotate-token", "m1"), "已绑定 Telegram", "yihu members relink m1")
    _refused(("members", "relink", "zz9"), "没有编号为 zz9 的成员")
    _refused(("members", "rotate-token", "zz9"), "没有编号为 zz9 的成员")

    rotated = run("members", "rotate-token", "m4")
    assert rotated.exit_code == 0, rotated.stderr
    assert "m4：已发新邀请码；旧码失效。" in rotated.stdout and LINK.findall(rotated.stdout) == [_token("m4")]


def test_unbind_in_chinese(village: dict[str, str]) -> None:
    _bind("g1", -100777)

    unbound = run("groups", "unbind", "g1")

    assert unbound.exit_code == 0, unbound.stderr
    assert "联防组 g1（第一联防组）：已与群聊 -100777 解除绑定" in unbound.stdout
    again = run("groups", "unbind", "g1")
    assert again.exit_code == 0 and "没有绑定群聊；未做任何更改" in again.stdout
    _refused(("groups", "unbind", "g9"), "没有编号为 g9 的联防组")


def test_forget_refused_then_forced_and_kept_erased_by_an_import(village: dict[str, str]) -> None:
    number = _incident("m5", "open", "孙七家门口有人撬锁")

    _refused(("members", "forget", "m5"), f"成员 m5 有未结的警情（#{number}）", "--force")
    _refused(("members", "forget", "nobody"), "没有编号为 nobody 的成员")

    forced = run("members", "forget", "m5", "--force")

    assert forced.exit_code == 0, forced.stderr
    lines = forced.stdout.splitlines()
    assert lines[0] == "m5：姓名、电话和 Telegram 绑定已删除；该成员已停用，并保持删除。"
    assert lines[1].startswith("已删除：警情文字与位置 1 条")
    assert f"编号 m5 仍作为 #{number} 的报警人" in lines[2] and f"--force：虽然 #{number} 仍未结" in lines[3]
    assert "孙七" not in _dump() and "撬锁" not in _dump()
    assert "m5" not in {m["key"] for m in invites_json()["members"]}

    (view,) = json.loads(run("incidents", "--format", "json").stdout)
    assert view["reporter"] == "m5" and view["erased"] == ["m5"] and view["text"] is None
    table = run("incidents").stdout
    assert "m5（已删除）" in table

    again = run("members", "forget", "m5")
    assert again.exit_code == 0 and "早已删除" in again.stdout

    imported = run("roster", "import", str(DATA / "roster.yaml"))
    assert imported.exit_code == 0, imported.stderr
    assert "警告：m5 的个人信息已删除" in imported.stderr
    assert "孙七" not in _dump()
    assert "成员：" in imported.stdout  # the rest of the import went through


def test_backup_of_postgresql_says_to_use_pg_dump(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIHU_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    zh = run("backup", "copy.db")
    assert zh.exit_code != 0 and "请用 pg_dump" in zh.stderr and "Traceback" not in zh.stderr
    monkeypatch.setenv("YIHU_LANGUAGE", "en")
    en = run("backup", "copy.db")
    assert en.exit_code != 0 and "use pg_dump" in en.stderr


def test_backup_of_no_database(env: dict[str, str]) -> None:
    result = run("backup", "copy.db")
    assert result.exit_code == 1 and "没有数据库" in result.stderr


def _english(output: str) -> None:
    """English throughout, apart from the roster's own names (group and household names)."""
    for line in output.splitlines():
        stripped = re.sub(r"（?\(?第.联防组\)?）?", "", line)
        assert not CJK.search(stripped), line


def test_english_is_complete_for_every_operator_command(
    village: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YIHU_LANGUAGE", "en")
    outputs: list[str] = []

    def ok(*args: str) -> str:
        result = run(*args)
        assert result.exit_code == 0, result.stderr
        outputs.extend([result.stdout, result.stderr])
        return str(result.stdout)

    def refused(*args: str) -> str:
        result = run(*args)
        assert result.exit_code == 1
        outputs.append(result.stderr)
        return str(result.stderr)

    _link("m2", 5151)
    _bind("g1", -100888)
    number = _incident("m5", "open", "text")
    assert "Telegram link forgotten" in ok("members", "relink", "m2")
    assert "New invite link: https://t.me/" in ok("members", "rotate-token", "m4")
    _link("m1", 5252)
    assert "use `yihu members relink m1`" in refused("members", "rotate-token", "m1")
    assert "There is no member with the key zz" in refused("members", "relink", "zz")
    assert "unbound from chat -100888" in ok("groups", "unbind", "g1")
    assert "is not bound to a chat" in ok("groups", "unbind", "g1")
    assert "There is no group with the code g9" in refused("groups", "unbind", "g9")
    assert f"has an open incident (#{number})" in refused("members", "forget", "m5")
    forced = ok("members", "forget", "m5", "--force")
    assert "name, phone and Telegram link erased" in forced and f"reporter of #{number}, shown as erased" in forced
    assert "m5 (erased)" in ok("incidents")
    imported = run("roster", "import", str(DATA / "roster.yaml"))
    assert "warning: m5 was erased" in imported.stderr and "members: 0 created" in imported.stdout
    outputs.extend([imported.stdout, imported.stderr])
    assert "database is up to date" in run("db", "upgrade").stderr
    _english("\n".join(outputs))


def test_roster_errors_follow_the_language(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    bad = str(DATA / "bad_references.yaml")

    zh = run("roster", "import", bad)

    assert zh.exit_code == 1
    lines = zh.stderr.strip().splitlines()
    assert f"{bad}: grids[0].groups[1].head: m1 不是联防组 g2 的成员。" in lines
    assert f"{bad}: grids[0].workers[0]: p1 的角色是 police，不是 grid_worker。" in lines
    assert lines[-1] == f"{bad}：3 处错误；什么也没有导入。"
    syntax = run("roster", "import", str(DATA / "bad_syntax.yaml"))
    assert "第 4 行第 1 列：YAML 语法错误" in syntax.stderr

    monkeypatch.setenv("YIHU_LANGUAGE", "en")
    en = run("roster", "import", bad)
    assert en.exit_code == 1
    _english(en.stderr)
    assert en.stderr.strip().splitlines()[-1] == f"{bad}: 3 error(s); nothing was imported."


def test_every_roster_problem_has_both_languages() -> None:
    """Each roster.* key the parser can raise is in both catalogues (the catalogue test checks the pairs)."""
    source = Path(roster_parse.__file__).read_text(encoding="utf-8")
    raised = set(re.findall(r'check\.error\([^,]+, "(\w+)"', source))
    raised |= set(re.findall(r'"roster\.(\w+)"', source))
    raised |= {"key_twice", "grid_twice", "group_twice", "household_twice", "villager_not_staff", "not_in_staff"}
    for language in ("zh", "en"):
        texts = catalogue(language)
        missing = sorted(k for k in raised if f"roster.{k}" not in texts)
        assert not missing, (language, missing)
