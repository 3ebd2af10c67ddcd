"""Discord protocol layer: the real discord.py client (connectors/discord/client.py) against
tests/fakes/discord_api.py, which speaks Discord's REST and gateway protocols."""
from __future__ import annotations

import asyncio

import discord
import pytest
from discord.http import Route
from pydantic import ValidationError

from connectors.discord.client import (AGENT_COMMANDS, RULE_DM_CLOSED, DiscordEvents, DiscordRefusal,
                                       KefuDiscordClient, kefu_intents)
from connectors.discord.config import DiscordChannel
from tests.fakes.changes import Changes
from tests.fakes.discord_api import FakeDiscord
from tests.kefu_harness import wait_for

GUILD = "1100000000000000001"
AGENTS = "1100000000000000002"
SUPPORT = "1100000000000000003"
CUSTOMER = "1200000000000000001"
AGENT = "1200000000000000002"
T = 10.0


class Recorder(DiscordEvents):
    def __init__(self) -> None:
        self.changes = Changes("Recorder")
        self.customer: list[tuple[str, discord.Message]] = []
        self.agent: list[discord.Message] = []
        self.commands: list[tuple[str, dict]] = []

    async def customer_message(self, message, where):
        self.customer.append((where, message))
        self.changes.notify()

    async def agent_message(self, message):
        self.agent.append(message)
        self.changes.notify()

    async def command(self, interaction, name, options):
        self.commands.append((name, options))
        self.changes.notify()
        return f"/{name} done"

    async def wait_for(self, predicate, timeout: float = T):
        return await self.changes.wait_for(predicate, timeout)


def make_config(fake: FakeDiscord, **kw) -> DiscordChannel:
    return DiscordChannel(kind="discord", token=fake.token, api_base=fake.api_base,
                          gateway_url=fake.gateway_url, agents={"guild_id": GUILD, "channel_id": AGENTS},
                          support_channel_id=SUPPORT, **kw)


async def start_client(fake: FakeDiscord, recorder: Recorder, *, content_intent: bool = True):
    client = KefuDiscordClient(make_config(fake), recorder, guild_ready_timeout=0.05)
    if not content_intent:
        client._connection._intents.message_content = False
    task = asyncio.create_task(client.start_with_config_token())
    ready = asyncio.create_task(client.wait_until_ready())
    done, _ = await asyncio.wait({task, ready}, timeout=T, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        if task.done():
            task.result()
        raise TimeoutError("discord client did not become ready")
    return client, task


async def stop_client(client, task) -> None:
    await client.close()
    await asyncio.wait_for(task, T)


@pytest.fixture
async def fake():
    f = FakeDiscord()
    await f.start()
    f.add_guild(GUILD, "Shop agents", {AGENTS: "conversations", SUPPORT: "support"})
    yield f
    await f.stop()


@pytest.fixture
async def bot(fake):
    recorder = Recorder()
    client, task = await start_client(fake, recorder)
    yield client, recorder
    await stop_client(client, task)


def posts(fake: FakeDiscord, prefix: str = "/channels/") -> list[dict]:
    return [c for c in fake.calls if c["method"] == "POST" and c["path"].startswith(prefix)]


async def test_logs_in_receives_a_dm_and_answers(fake, bot):
    client, rec = bot
    assert fake.identifies[0]["intents"] == kefu_intents().value
    assert fake.calls[0]["path"] == "/users/@me"
    assert fake.calls[0]["headers"]["Authorization"] == f"Bot {fake.token}"
    assert client.get_guild(int(GUILD)) is not None  # GUILD_CREATE arrived

    fake.inject_dm(CUSTOMER, "my key does not work", [("shot.png", b"\x89PNG fake", "image/png")])
    where, msg = (await rec.wait_for(lambda: rec.customer))[0]
    assert (where, msg.content, str(msg.author.id)) == ("dm", "my key does not work", CUSTOMER)
    assert await msg.attachments[0].read() == b"\x89PNG fake"

    ids = await client.send_dm(CUSTOMER, "Sorry! Here is a new key.")
    dm = next(c for c in fake.channels.values() if c["type"] == 1)
    assert [m["content"] for m in fake.messages[dm["id"]]] == ["my key does not work", "Sorry! Here is a new key."]
    assert ids == [int(fake.messages[dm["id"]][-1]["id"])]
    assert posts(fake)[-1]["headers"]["Content-Type"] == "application/json"
    # the bot's own message comes back on the gateway and is not taken for a customer's
    await fake.wait_for(lambda: len(fake.messages[dm["id"]]) == 2)
    fake.inject_dm(CUSTOMER, "thanks")
    await rec.wait_for(lambda: len(rec.customer) == 2)
    assert [m.content for _, m in rec.customer] == ["my key does not work", "thanks"]


async def test_long_text_is_split_and_files_attached(fake, bot):
    client, _ = bot
    text = ("Paragraph one. " * 90 + "\n\n") * 3  # ≈ 4,000 characters
    await client.send_dm(CUSTOMER, text, [("key.txt", b"AAAA-BBBB-CCCC")])
    dm = next(c for c in fake.channels.values() if c["type"] == 1)
    sent = fake.messages[dm["id"]]
    assert len(sent) == 3 and all(len(m["content"]) <= 2000 for m in sent)
    assert " ".join(m["content"] for m in sent).split() == text.split()
    assert [a["filename"] for a in sent[-1]["attachments"]] == ["key.txt"] and not sent[0]["attachments"]
    multipart = posts(fake)[-1]
    assert multipart["headers"]["Content-Type"].startswith("multipart/form-data")
    assert multipart["files"][0]["data"] == b"AAAA-BBBB-CCCC"
    # a re-send after a crash that had sent two parts sends only the rest
    await client.send_dm(CUSTOMER, text, [("key.txt", b"AAAA-BBBB-CCCC")], first_part=2)
    assert len(sent) == 4 and sent[3]["content"] == sent[2]["content"] and sent[3]["attachments"]


async def test_a_429_is_retried_the_way_discord_asks(fake, bot):
    client, _ = bot
    fake.rate_limit_next("POST /channels/", retry_after=0.2)
    await client.send_dm(CUSTOMER, "after a pause")
    statuses = [c["status"] for c in posts(fake) if c["path"].endswith("/messages")]
    assert statuses == [429, 200]
    assert fake.rate_violations == []
    dm = next(c for c in fake.channels.values() if c["type"] == 1)
    assert [m["content"] for m in fake.messages[dm["id"]]] == ["after a pause"]


async def test_a_user_who_refuses_dms_is_a_named_refusal(fake, bot):
    client, _ = bot
    fake.block_dms(CUSTOMER)
    with pytest.raises(DiscordRefusal) as e:
        await client.send_dm(CUSTOMER, "hello?")
    assert e.value.rule == RULE_DM_CLOSED and e.value.code == 50007
    assert "私信" in e.value.explain("zh") and "direct messages" in e.value.explain("en")


async def test_a_conversation_thread_from_creation_to_archive(fake, bot):
    client, rec = bot
    thread = await client.create_thread("Bob · order 2024ABCD")
    assert fake.threads[str(thread.id)]["parent_id"] == AGENTS
    await wait_for(lambda: isinstance(client.get_channel(thread.id), discord.Thread), T)

    await client.post_in_thread(thread.id, "Customer Bob: my key does not work")
    fake.inject_channel_message(str(thread.id), AGENT, "Sending you a new one now")
    msg = (await rec.wait_for(lambda: rec.agent))[0]
    assert (msg.content, str(msg.author.id), msg.channel.id) == ("Sending you a new one now", AGENT, thread.id)

    await client.rename_thread(thread.id, "Bob · order 2024ABCD · VIP")
    await client.archive_thread(thread.id, name="✔ Bob · order 2024ABCD")
    t = fake.threads[str(thread.id)]
    assert t["name"] == "✔ Bob · order 2024ABCD" and t["thread_metadata"]["archived"] is True
    patches = [c for c in fake.calls if c["method"] == "PATCH"]
    assert [p["json"] for p in patches] == [{"name": "Bob · order 2024ABCD · VIP"},
                                            {"archived": True, "name": "✔ Bob · order 2024ABCD"}]


async def test_slash_commands_are_registered_and_answered(fake, bot):
    client, rec = bot
    await client.register_commands()
    assert [c["name"] for c in fake.commands[GUILD]] == [c["name"] for c in AGENT_COMMANDS]
    thread = await client.create_thread("Carol")
    await wait_for(lambda: isinstance(client.get_channel(thread.id), discord.Thread), T)
    interaction = fake.inject_slash_command(str(thread.id), AGENT, "transfer", {"to": "finance"})
    await rec.wait_for(lambda: rec.commands)
    assert rec.commands == [("transfer", {"to": "finance"})]
    answer = (await fake.wait_for(lambda: fake.interaction_responses))[0]
    assert answer["interaction_id"] == interaction["id"] and answer["token"] == interaction["token"]
    assert answer["type"] == 4 and answer["data"] == {"content": "/transfer done", "flags": 64}


async def test_support_channel_posts_are_customers(fake, bot):
    _, rec = bot
    fake.inject_channel_message(SUPPORT, CUSTOMER, "Is the Steam card in stock?")
    where, msg = (await rec.wait_for(lambda: rec.customer))[0]
    assert (where, msg.content) == ("support", "Is the Steam card in stock?")


async def test_heartbeats_and_resume_after_a_dropped_connection(fake):
    fake.heartbeat_interval_ms = 100
    rec = Recorder()
    client, task = await start_client(fake, rec)
    try:
        await fake.wait_for(lambda: fake.heartbeats >= 3)
        assert client.latency != float("inf")  # heartbeats were acknowledged
        await fake.drop_connection()
        fake.inject_dm(CUSTOMER, "sent while you were away")  # buffered for the session
        await rec.wait_for(lambda: rec.customer)
        await fake.wait_for(lambda: fake.connected == 1)
        assert len(fake.identifies) == 1 and len(fake.resumes) == 1
        fake.inject_dm(CUSTOMER, "and after")
        await rec.wait_for(lambda: len(rec.customer) == 2)
        assert [m.content for _, m in rec.customer] == ["sent while you were away", "and after"]
    finally:
        await stop_client(client, task)


async def test_without_message_content_only_dms_carry_text(fake):
    rec = Recorder()
    client, task = await start_client(fake, rec, content_intent=False)
    try:
        thread = await client.create_thread("Dave")
        await wait_for(lambda: isinstance(client.get_channel(thread.id), discord.Thread), T)
        fake.inject_channel_message(str(thread.id), AGENT, "reply text")
        fake.inject_dm(CUSTOMER, "dm text")
        await rec.wait_for(lambda: rec.agent and rec.customer)
        assert rec.agent[0].content == "" and rec.customer[0][1].content == "dm text"
    finally:
        await stop_client(client, task)


async def test_two_channels_with_their_own_servers_in_one_process():
    one, two = FakeDiscord(token="ONE.token"), FakeDiscord(token="TWO.token")
    await one.start()
    await two.start()
    started = []
    try:
        for f in (one, two):
            f.add_guild(GUILD, "Shop", {AGENTS: "conversations", SUPPORT: "support"})
            started.append(await start_client(f, Recorder()))
        for (client, _), f in zip(started, (one, two)):
            await client.send_dm(CUSTOMER, f"via {f.token}")
        for f in (one, two):
            dm = next(c for c in f.channels.values() if c["type"] == 1)
            assert [m["content"] for m in f.messages[dm["id"]]] == [f"via {f.token}"]
            assert len(f.identifies) == 1
        assert Route.BASE == "https://discord.com/api/v10"  # nobody else's client was moved
    finally:
        for client, task in started:
            await stop_client(client, task)
        await one.stop()
        await two.stop()


def test_config_takes_snowflake_strings():
    ch = DiscordChannel(kind="discord", token="t", agents={"guild_id": 1100000000000000001,
                                                           "channel_id": "1100000000000000002"})
    assert ch.agents.guild_id == "1100000000000000001" and ch.api_base == "https://discord.com/api/v10"
    for bad in ({"agents": {"guild_id": "abc", "channel_id": "1"}}, {"gateway_url": "http://x"},
                {"api_base": "discord.com"}):
        with pytest.raises(ValidationError):
            DiscordChannel(kind="discord", token="t", **bad)
