"""Every Redis key kefu uses, in one place.

All keys live under one configurable prefix so several deployments (or test
runs) can share a Redis server.  Lua scripts receive the prefix and build the
same names; the suffixes they use are the ones defined here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "kefu:"

    # --- streams -------------------------------------------------------------
    @property
    def inbound(self) -> str:
        """Stream of normalised inbound events, read by the router group."""
        return f"{self.prefix}in"

    def outbound(self, channel: str) -> str:
        """Stream of replies waiting to leave through one channel."""
        return f"{self.prefix}out:{channel}"

    @property
    def changes(self) -> str:
        """The change log: every change of a conversation, appended by the script that makes
        it (storage/changes.py)."""
        return f"{self.prefix}changes"

    @property
    def parked(self) -> str:
        """Stream of entries that could not be decoded or delivered for good."""
        return f"{self.prefix}parked"

    def dedupe(self, channel: str, platform_msg_id: str) -> str:
        """Marks a platform message id as already in the stream (value: event id)."""
        return f"{self.prefix}dedupe:{channel}:{platform_msg_id}"

    def sent(self, message_id: str) -> str:
        """Marks an outbound message as handed to its platform."""
        return f"{self.prefix}sent:{message_id}"

    def consumer_alive(self, consumer: str) -> str:
        """Heartbeat of one process's consumers; its expiry means the process died."""
        return f"{self.prefix}alive:{consumer}"

    # --- conversations -------------------------------------------------------
    def conversation(self, cid: str) -> str:
        return f"{self.prefix}conv:{cid}"

    def conversation_messages(self, cid: str) -> str:
        """Hash message id -> encoded message (idempotent writes)."""
        return f"{self.prefix}conv:{cid}:msg"

    def conversation_order(self, cid: str) -> str:
        """List of message ids in arrival order."""
        return f"{self.prefix}conv:{cid}:order"

    def customer_conversation(self, channel: str, customer_id: str) -> str:
        """The customer's current open conversation on a channel."""
        return f"{self.prefix}custconv:{channel}:{customer_id}"

    def customer_history(self, channel: str, customer_id: str) -> str:
        """Every conversation of a customer on a channel, oldest first."""
        return f"{self.prefix}custhist:{channel}:{customer_id}"

    @property
    def open_conversations(self) -> str:
        """Sorted set of open conversation ids by last activity."""
        return f"{self.prefix}convs:open"

    @property
    def closed_conversations(self) -> str:
        return f"{self.prefix}convs:closed"

    def queue(self, role: str) -> str:
        """Sorted set of a role's conversations waiting for an agent (tickets, VIP, then oldest)."""
        return f"{self.prefix}queue:{role or '_any'}"

    def customer(self, channel: str, customer_id: str) -> str:
        """Hash: tier, attributes, language, last_agent (for sticky assignment)."""
        return f"{self.prefix}customer:{channel}:{customer_id}"

    @property
    def timers(self) -> str:
        """Sorted set 'kind|conversation|extra' -> due time; fired by storage/lua/timers.lua."""
        return f"{self.prefix}timers"

    # --- agents --------------------------------------------------------------
    def agent(self, agent_id: str) -> str:
        """Hash: status, capacity, roles (comma separated), name, last_active."""
        return f"{self.prefix}agent:{agent_id}"

    def agent_conversations(self, agent_id: str) -> str:
        """Set of open conversations the agent owns."""
        return f"{self.prefix}agent:{agent_id}:convs"

    @property
    def agent_load(self) -> str:
        """Sorted set agent id -> number of open conversations owned."""
        return f"{self.prefix}agents:load"

    @property
    def agents_online(self) -> str:
        return f"{self.prefix}agents:online"

    def token(self, token_hash: str) -> str:
        """Agent session, stored under the SHA-256 of the bearer token."""
        return f"{self.prefix}token:{token_hash}"

    def agent_tokens(self, agent_id: str) -> str:
        """Set of the token hashes of an agent's sessions (to revoke them all at once)."""
        return f"{self.prefix}agent:{agent_id}:tokens"

    @property
    def audit(self) -> str:
        """Stream of agent actions (storage/audit.py), trimmed by length."""
        return f"{self.prefix}audit"

    def link_code(self, code: str) -> str:
        """One-time code an agent sends to a bot to link their chat-app account."""
        return f"{self.prefix}linkcode:{code}"

    def chat_link(self, app: str, user_id: str) -> str:
        """Chat-app account (telegram / qq user id) -> agent id."""
        return f"{self.prefix}chatlink:{app}:{user_id}"

    # --- files customers and agents send (storage/attachments.py) --------------
    def attachment(self, attachment_id: str) -> str:
        """hash: data, type, name, size; expires after web.upload_ttl."""
        return f"{self.prefix}file:{attachment_id}"

    # --- pub/sub -------------------------------------------------------------
    @property
    def agent_events(self) -> str:
        """Pub/sub channel fanning live changes out to every process's /api/events."""
        return f"{self.prefix}events"

    def webchat_push(self, channel: str) -> str:
        """Pub/sub channel carrying replies to whichever process holds the visitor's socket."""
        return f"{self.prefix}webchat:{channel}:push"

    def webchat_visitor(self, channel: str, customer_id: str) -> str:
        """Set while a visitor token is known here (issued or seen lately): a token
        that is not counts against `limits.webchat.new_visitors_per_ip`."""
        return f"{self.prefix}webchat:{channel}:visitor:{customer_id}"

    def webchat_pending(self, channel: str, customer_id: str) -> str:
        """Replies not yet written to a live socket of the visitor."""
        return f"{self.prefix}webchat:{channel}:pending:{customer_id}"

    # --- abuse limits (storage/limits.py) ---------------------------------------
    def rate(self, kind: str, subject: str) -> str:
        """Sorted set: times of the allowed events of one limited subject (sliding window);
        `kind` is the limit's config path, `subject` a digest (visitor, address, customer)."""
        return f"{self.prefix}rate:{kind}:{subject}"

    def login_guard(self, kind: str, subject: str) -> str:
        """Hash: failed-login round and lock-outs of one agent name or address (a digest)."""
        return f"{self.prefix}login:{kind}:{subject}"

    # --- the channel toolkit (connectors/kit/) ------------------------------------
    def lease(self, name: str) -> str:
        """Hash (holder, info) of the process holding a platform connection (connectors/kit/lease.py)."""
        return f"{self.prefix}lease:{name}"

    def pace(self, scope: str) -> str:
        """Hash (tat, cool): the next send slot of a scope and its retry_after (connectors/kit/pacing.py)."""
        return f"{self.prefix}pace:{scope}"

    def sent_parts(self, channel: str, message_id: str) -> str:
        """List of the platform ids of the parts of a long reply already taken (connectors/kit/parts.py)."""
        return f"{self.prefix}parts:{channel}:{message_id}"

    def msg_ref(self, channel: str, platform_id: str) -> str:
        """A message the bot sent -> JSON {cid, id, text, to} (connectors/kit/refs.py)."""
        return f"{self.prefix}ref:{channel}:{platform_id}"

    # --- QQ (connectors/qq/) ----------------------------------------------------
    def qq_tag(self, channel: str, tag: str) -> str:
        """Short conversation tag (#a1b2) -> conversation id."""
        return f"{self.prefix}qq:{channel}:tag:{tag}"

    def qq_conv_tag(self, channel: str, cid: str) -> str:
        """Conversation id -> its short tag."""
        return f"{self.prefix}qq:{channel}:ctag:{cid}"

    def qq_relayed(self, channel: str, cid: str) -> str:
        """Set of agent targets (u<qq> / g<group>) that got the conversation's header."""
        return f"{self.prefix}qq:{channel}:relayed:{cid}"

    def qq_owner(self, channel: str, cid: str) -> str:
        """Last status|assignee relayed for a conversation (changes are announced once)."""
        return f"{self.prefix}qq:{channel}:owner:{cid}"

    def qq_relay_done(self, channel: str, message_id: str, target: str) -> str:
        """A kefu message already relayed to an agent target."""
        return f"{self.prefix}qq:{channel}:relaydone:{message_id}:{target}"

    def qq_agent_account(self, channel: str, agent_id: str) -> str:
        """QQ number an agent linked at run time (/link CODE) through this bot."""
        return f"{self.prefix}qq:{channel}:agentqq:{agent_id}"

    def qq_agent_msg(self, channel: str, platform_msg_id: str) -> str:
        """An agent's QQ message already acted on (a re-sent event is ignored)."""
        return f"{self.prefix}qq:{channel}:agentmsg:{platform_msg_id}"

    def qq_rpc(self, channel: str) -> str:
        """List of OneBot actions other processes ask the connection holder to run."""
        return f"{self.prefix}qq:{channel}:rpc"

    def qq_rpc_reply(self, channel: str, request_id: str) -> str:
        """The holder's answer to one forwarded action."""
        return f"{self.prefix}qq:{channel}:rpc:{request_id}"

    # --- Telegram (connectors/telegram/) ----------------------------------------
    # `bot` is the bot's numeric id (the token's part before ':'): two channels
    # or processes using one bot token share these keys.
    def tg_offset(self, bot: str) -> str:
        """Next getUpdates offset (updates below it are in the stream or acted on)."""
        return f"{self.prefix}tg:{bot}:offset"

    def tg_update_done(self, bot: str, update_id: int | str) -> str:
        """An agent's update already acted on (a re-delivered update is ignored)."""
        return f"{self.prefix}tg:{bot}:done:{update_id}"

    def tg_topic_conv(self, channel: str, thread_id: int | str) -> str:
        """Forum topic of the agents' group -> conversation id (team mode)."""
        return f"{self.prefix}tg:{channel}:topicconv:{thread_id}"

    def tg_relay(self, channel: str, cid: str) -> str:
        """Hash: where a conversation is relayed (chat/thread), how far (cursor), last status."""
        return f"{self.prefix}tg:{channel}:relay:{cid}"

    def tg_agent_account(self, agent_id: str) -> str:
        """Telegram user id an agent linked at run time (/link CODE)."""
        return f"{self.prefix}tg:agentacct:{agent_id}"
