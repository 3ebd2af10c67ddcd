"""Evidence: bundles any third party can check; tampering with text, order or time is named."""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from storage.archive.evidence import anchor_heads, export_bundle, verify_archive, verify_bundle
from storage.archive.evidence_chain import canonical_message, digest, link_hash
from tests.archive_harness import Transcript, archive, postgres_database  # noqa: F401 (fixtures)
from tests.kefu_harness import REPO


@pytest.fixture
async def chained(archive):
    t, other = Transcript("c_dispute"), Transcript("c_other", customer="u2")
    log = t.whole(6) + other.whole(2)
    log.insert(5, t.message("m_pic", "付款截图", 1_000_002.5,
                            attachments=[{"id": "f_" + "a" * 32, "name": "pay.png", "type": "image/png", "size": 9,
                                          "url": "/files/f_" + "a" * 32}]))
    await archive.writer.apply(log)
    return archive


async def test_an_exported_bundle_verifies_and_carries_each_message(chained):
    bundle = await export_bundle(chained.read, "c_dispute")
    assert [x["message_id"] for x in bundle["links"]] == [
        "m_c_dispute_0", "m_c_dispute_1", "m_c_dispute_2", "m_pic", "m_c_dispute_3", "m_c_dispute_4", "m_c_dispute_5"]
    assert bundle["links"][3]["message"]["attachments"][0]["name"] == "pay.png"
    assert verify_bundle(bundle).ok and (await verify_archive(chained.read)).ok
    assert await export_bundle(chained.read, "c_nope") is None


@pytest.mark.parametrize("tamper, broken", [
    (lambda b: b["links"][2]["message"].update(text="卡密已发送"), "m_c_dispute_2"),  # text
    (lambda b: b["links"][4]["message"].update(ts_us=b["links"][4]["message"]["ts_us"] + 60_000_000),
     "m_c_dispute_3"),  # time
    (lambda b: b["links"].insert(1, b["links"].pop(2)), "m_c_dispute_2"),  # order
    (lambda b: b["links"].pop(1), "m_c_dispute_2"),  # a message removed
])
async def test_a_tampered_bundle_names_the_first_broken_link(chained, tamper, broken):
    bundle = await export_bundle(chained.read, "c_dispute")
    tamper(bundle)
    verdict = verify_bundle(bundle)
    assert not verdict.ok and verdict.message_id == broken


@pytest.mark.parametrize("statement, broken", [
    ("UPDATE messages SET text = '卡密已发送' WHERE id = 'm_c_dispute_2'", "m_c_dispute_2"),
    ("UPDATE messages SET ts = ts + 60 WHERE id = 'm_c_dispute_4'", "m_c_dispute_4"),
    ("UPDATE messages SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END "
     "WHERE conversation_id = 'c_dispute' AND seq IN (2, 3)", "m_c_dispute_1"),
    ("UPDATE messages SET sender_kind = 'customer' WHERE id = 'm_c_dispute_1'", "m_c_dispute_1"),
    ("DELETE FROM messages WHERE id = 'm_c_dispute_5'", "m_c_dispute_5"),
])
async def test_tampering_with_the_archive_fails_verification_naming_the_message(chained, statement, broken):
    if "seq = CASE" in statement:  # swapping places needs the unique (conversation, seq) out of the way
        await chained.sql("UPDATE messages SET seq = -seq WHERE conversation_id = 'c_dispute' AND seq IN (2, 3)")
        statement = statement.replace("CASE seq WHEN 2 THEN 3 ELSE 2 END", "CASE seq WHEN -2 THEN 3 ELSE 2 END") \
            .replace("seq IN (2, 3)", "seq IN (-2, -3)")
    await chained.sql(statement)
    verdict = await verify_archive(chained.read)
    assert not verdict.ok and verdict.message_id == broken and verdict.conversation_id == "c_dispute"


async def test_chain_heads_are_logged_for_operators_to_anchor(chained, caplog):
    caplog.set_level("INFO", logger="kefu.archive")
    anchor = await anchor_heads(chained.engine, now=2_000_000)
    (line,) = [r for r in caplog.records if r.getMessage() == "evidence chain heads"]
    assert line.anchor == anchor["hash"] and line.conversations == 2
    assert [h[:2] for h in json.loads(anchor["heads"])] == [["c_dispute", 7], ["c_other", 2]]
    await chained.writer.apply([Transcript("c_other").message("m_late", "还在吗", 1_000_100)])
    again = await anchor_heads(chained.engine, now=2_000_100)
    assert again["prev"] == anchor["hash"] and [h[:2] for h in json.loads(again["heads"])] == [["c_other", 3]]
    bundle = await export_bundle(chained.read, "c_other")
    assert [a["hash"] for a in bundle["anchors"]] == [anchor["hash"], again["hash"]] and verify_bundle(bundle).ok


async def test_a_chain_rewritten_consistently_still_fails_against_its_anchor(chained):
    anchor = await anchor_heads(chained.engine, now=2_000_000)
    assert anchor is not None and await anchor_heads(chained.engine) is None  # nothing new since
    # Rewrite message 4 and every link from it on, as someone with the database could.
    async with chained.read.connect() as conn:
        rows = (await conn.exec_driver_sql(
            "SELECT id, seq, direction, sender_kind, sender_id, sender_name, text, attachments, ts FROM messages "
            "WHERE conversation_id = 'c_dispute' ORDER BY seq")).all()
        prev = (await conn.exec_driver_sql(
            "SELECT hash FROM evidence_links WHERE conversation_id = 'c_dispute' AND seq = 3")).scalar_one()
    await chained.sql("UPDATE messages SET text = 'forged' WHERE id = 'm_c_dispute_3'")
    for r in rows[3:]:
        d = digest(canonical_message(id=r.id, conversation_id="c_dispute", direction=r.direction,
                                     sender_kind=r.sender_kind, sender_id=r.sender_id, sender_name=r.sender_name,
                                     text="forged" if r.id == "m_c_dispute_3" else r.text,
                                     attachments=json.loads(r.attachments), ts=r.ts))
        prev = link_hash(prev, d)
        await chained.sql("UPDATE evidence_links SET digest = :d, hash = :h "
                          "WHERE conversation_id = 'c_dispute' AND seq = :s", d=d, h=prev, s=r.seq)
    verdict = await verify_archive(chained.read)
    assert not verdict.ok and "anchor" in verdict.reason and verdict.message_id == "m_c_dispute_5"
    assert not verify_bundle(await export_bundle(chained.read, "c_dispute")).ok


def _docs_verifier() -> str:
    text = (REPO / "docs" / "evidence.md").read_text()
    (code,) = re.findall(r"## Checking a bundle yourself.*?```python\n(.*?)```", text, re.S)
    assert len(code.strip().splitlines()) <= 15
    return code


async def test_the_fifteen_line_verifier_of_the_docs_checks_bundles(chained, tmp_path):
    bundle = await export_bundle(chained.read, "c_dispute")
    (tmp_path / "verify.py").write_text(_docs_verifier())
    (tmp_path / "good.json").write_text(json.dumps(bundle, ensure_ascii=False))
    bad = copy.deepcopy(bundle)
    bad["links"][1]["message"]["text"] = "我已经退款了"
    (tmp_path / "bad.json").write_text(json.dumps(bad, ensure_ascii=False))
    good = subprocess.run([sys.executable, "verify.py", "good.json"], cwd=tmp_path, capture_output=True, text=True)
    assert good.returncode == 0 and bundle["head"] in good.stdout
    broken = subprocess.run([sys.executable, "verify.py", "bad.json"], cwd=tmp_path, capture_output=True, text=True)
    assert broken.returncode == 1 and "m_c_dispute_1" in broken.stderr


def _kefu(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregator", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)


async def test_the_cli_exports_and_verifies_while_the_writer_is_connected(archive, tmp_path):
    """`kefu evidence` beside a live writer (the daemon's connection stays open throughout)."""
    if archive.engine.dialect.name == "sqlite":
        config = {"state_dir": str(tmp_path)}  # url null: archive.sqlite3 under state_dir
    else:
        config = {"state_dir": str(tmp_path), "archive": {"url": archive.url}}
    (tmp_path / "kefu.yaml").write_text(yaml.safe_dump(config))
    t = Transcript("c_cli")
    async with archive.engine.connect():
        await archive.writer.apply(t.whole(4))
        assert _kefu("migrate", "--config", "kefu.yaml", cwd=tmp_path).returncode == 0
        exported = _kefu("evidence", "export", "c_cli", "-o", "b.json", "--config", "kefu.yaml", cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        ok = _kefu("evidence", "verify", "b.json", "--config", "kefu.yaml", cwd=tmp_path)
        assert ok.returncode == 0 and "intact" in ok.stdout
        await archive.sql("UPDATE messages SET text = 'changed' WHERE id = 'm_c_cli_2'")
        broken = _kefu("evidence", "verify", "--config", "kefu.yaml", cwd=tmp_path)
        assert broken.returncode == 1 and "m_c_cli_2" in broken.stdout
