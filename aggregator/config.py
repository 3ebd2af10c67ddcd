"""config.yaml: every key kefu understands, its default and what it is for.

This module is the reference of the configuration file: each model below is a
section, each field a key.  Loading is strict — an unknown key is an error, a
typo must never be silently ignored — and every problem is reported with its
YAML path and line number.  Strings may use ``${VAR}`` (or
``${VAR:-default}``) to take secrets from the environment; a variable that is
not set is an error naming it.
"""
from __future__ import annotations

import difflib
import io
import ipaddress
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, HttpUrl, SecretStr,
                      ValidationError, field_validator, model_validator)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from routing.faq import FaqEntry
from routing.permissions import Permission, default_permissions
from routing.working_hours import WorkingHoursConfig
from storage.archive.config import ArchiveConfig, RetentionConfig
from storage.durations import Duration, Milliseconds, PositiveDuration, WholeSeconds
from storage.shop.config import ShopConfig
from storage.shop.tiers import TiersConfig

class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Localized(Section):
    zh: str
    en: str


_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"  # json: one JSON object per line


class RedisConfig(Section):
    # null: kefu starts its own private redis-server under state_dir (unix
    # socket, append-only file on) and stops it on exit.  Otherwise a
    # redis://, rediss:// or unix:// URL of a Redis shared by every kefu process.
    url: str | None = None
    prefix: str = "kefu:"  # every key kefu writes starts with this
    # Embedded server only: how often the append-only file is fsynced.
    appendfsync: Literal["always", "everysec", "no"] = "everysec"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v


class WebConfig(Section):
    listen: str = "127.0.0.1:8080"  # host:port of the HTTP server (chat, console, API)
    max_text_length: int = Field(4000, ge=1)  # longer customer or agent text → 413
    max_body_bytes: int = Field(1 << 20, ge=1024)  # larger request bodies → 413
    token_ttl: WholeSeconds = Field(12 * 3600, ge=1)  # how long an agent login stays valid
    # Files customers and agents send (images, documents): largest accepted, and how
    # long kefu keeps them (they live in Redis, served at /files/<id>).
    max_upload_bytes: int = Field(10 << 20, ge=1024)
    upload_ttl: Duration = 90 * 86400
    # The address customers and the shop's server reach kefu at, e.g.
    # https://kefu.example.com: links to files in the API channel's callbacks and
    # in chat apps that cannot carry a file start with it.  Default http://{listen}.
    public_url: str | None = None
    # Proxies (addresses or networks) whose X-Forwarded-For is believed: the
    # client's address, which the abuse limits count by, is then the last one
    # they name that is not a proxy itself.  Anyone else's header is ignored.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]

    @field_validator("listen")
    @classmethod
    def _hostport(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return v

    @field_validator("public_url")
    @classmethod
    def _public(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError("must be an http:// or https:// address, e.g. https://kefu.example.com")
        return v.rstrip("/") if v else v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not an address or network, e.g. 10.0.0.0/8") from None
        return v

    def absolute(self, path: str) -> str:
        """`path` (/files/...) as an address from outside."""
        return (self.public_url or f"http://{self.listen}") + path

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class BusConfig(Section):
    batch: int = Field(100, ge=1, le=10000)  # entries read per XREADGROUP
    block_ms: Milliseconds = Field(1000, ge=10, le=10000)  # how long a reader blocks waiting (ms, or 1s)
    claim_idle: PositiveDuration = 30.0  # before a live consumer's pending entry is taken over
    heartbeat_ttl: PositiveDuration = 15.0  # without heartbeat a process counts as dead
    dedupe_ttl: WholeSeconds = Field(3 * 86400, ge=60)  # how long a platform message id is remembered
    trim_interval: PositiveDuration = 10.0  # between stream trims


def _rate(v: Any) -> Any:
    """'30/1m' (30 per minute) or {count: 30, per: 1m}."""
    if isinstance(v, str):
        count, sep, per = v.partition("/")
        if not sep or not count.strip().isdigit():
            raise ValueError("must be count/duration like 30/1m, or {count: 30, per: 1m}")
        return {"count": int(count), "per": per}
    return v


class Rate(Section):
    """At most `count` in any `per` (a sliding window); null = no limit."""
    count: int = Field(ge=1)
    per: Annotated[Duration, Field(gt=0)]


LimitRate = Annotated[Rate | None, BeforeValidator(_rate)]


class WebchatLimits(Section):
    """Each web chat channel separately; a refused message gets an error frame with
    `retry_after` (the connection stays open) and is not stored."""
    messages_per_visitor: LimitRate = Rate(count=30, per=60)
    messages_per_ip: LimitRate = Rate(count=120, per=60)
    new_visitors_per_ip: LimitRate = Rate(count=30, per=600)  # visitor tokens kefu did not know
    uploads_per_visitor: LimitRate = Rate(count=30, per=3600)
    uploads_per_ip: LimitRate = Rate(count=60, per=3600)


class ApiLimits(Section):
    """Each API channel separately, per customer_id (the shop's server is one address
    for all its customers); over it: 429 with Retry-After, nothing stored."""
    messages_per_customer: LimitRate = Rate(count=60, per=60)


class LoginLimits(Section):
    """Agent logins: after this many attempts within `window` for one agent name
    (existing or not), or from one address, the name or address is locked out
    (429 with Retry-After) for `lockout`, twice as long each further time."""
    attempts_per_agent: int = Field(5, ge=1)  # a successful login starts the count again
    attempts_per_ip: int = Field(20, ge=1)  # successful logins do not count
    window: Annotated[Duration, Field(gt=0)] = 900.0
    lockout: Annotated[Duration, Field(gt=0)] = 60.0
    max_lockout: Annotated[Duration, Field(gt=0)] = 3600.0
    forget_after: Duration = 86400.0  # lock-outs so far are forgotten after this long without attempts


class LimitsConfig(Section):
    """Abuse limits, shared by every kefu process on the Redis."""
    webchat: WebchatLimits = WebchatLimits()
    api: ApiLimits = ApiLimits()
    login: LoginLimits = LoginLimits()


DEFAULT_KEYWORDS = {
    "finance": ["退款", "退钱", "支付失败", "付款失败", "扣款", "充值失败", "发票", "refund", "payment failed",
                "charged twice", "invoice"],
    "aftersales": ["卡密", "没收到", "未收到", "没到", "激活失败", "无法激活", "不能用", "无效", "补发",
                   "card key", "license key", "not received", "never received", "didn't receive", "didn’t receive",
                   "did not receive", "haven't received", "haven’t received", "never arrived", "not arrived",
                   "didn't arrive", "didn’t arrive", "hasn't arrived", "hasn’t arrived", "not delivered",
                   "activation failed", "invalid key", "doesn't work", "doesn’t work", "not working", "resend"],
    "presales": ["价格", "多少钱", "批发", "优惠", "有货", "库存", "price", "how much", "wholesale", "discount",
                 "in stock"],
    "dispute": ["投诉", "纠纷", "骗子", "报警", "举报", "chargeback", "scam", "fraud", "complaint", "dispute"],
}


class RouterConfig(Section):
    # Role of a new conversation, decided in this order: the channel's `role`;
    # the customer's answer to the welcome menu (roles' `menu` numbers);
    # `keywords` (first role whose word appears, checked in dispute, finance,
    # aftersales, presales order); else `default_role` ("" = any agent).
    default_role: str = "presales"
    keywords: dict[str, list[str]] = DEFAULT_KEYWORDS
    # A customer writing one of these is put first in line for a human.
    human_words: list[str] = ["人工", "转人工", "人工客服", "真人", "human", "real person", "agent please"]
    default_capacity: int = Field(5, ge=1)  # open conversations per agent unless set per agent
    sticky: bool = True  # prefer the agent who served this customer last
    vip_agents: list[str] = []  # when set, VIP conversations go only to these agents
    auto_away_after: Duration = 900.0  # online agents idle this long become away (0 = never)
    drain_interval: PositiveDuration = 1.0  # between sweeps that assign waiting conversations
    position_updates: Duration = 60.0  # at most one queue-position message per conversation per this


class RoleConfig(Section):
    name: "Localized"  # shown to customers and agents
    hours: str | None = None  # a calendar under `hours:`; none = always open (7×24)
    menu: int | None = Field(None, ge=1, le=9)  # number in the welcome menu
    fallback: str | None = None  # role that takes conversations nobody of this role can
    # What agents of the role may do beyond answering (routing/permissions.py):
    # view_orders, resend_card_key, view_card_keys, reveal_pii, view_reports,
    # export_evidence.  An agent holds the union of their roles'.  Not set: the
    # built-in ones (presales, finance, dispute: [view_orders]; aftersales:
    # [view_orders, resend_card_key]; supervisor: all; roles of your own: none).
    permissions: list[Permission] | None = None


def _default_roles() -> dict[str, "RoleConfig"]:
    return {
        "presales": RoleConfig(name=Localized(zh="售前咨询", en="Pre-sales"), menu=1),
        "aftersales": RoleConfig(name=Localized(zh="售后处理", en="After-sales"), menu=2),
        "finance": RoleConfig(name=Localized(zh="财务查询", en="Billing"), menu=3),
        "dispute": RoleConfig(name=Localized(zh="争议处理", en="Disputes"), menu=4, fallback="supervisor"),
        "supervisor": RoleConfig(name=Localized(zh="主管", en="Supervisor")),
    }


class SlaTarget(Section):
    first_response: Duration  # 0 = immediately
    resolution: Duration


class SlaConfig(Section):
    """Targets per priority (normal, urgent, dispute); VIP raises one level."""
    normal: SlaTarget = SlaTarget(first_response=1800, resolution=86400)
    urgent: SlaTarget = SlaTarget(first_response=300, resolution=7200)
    dispute: SlaTarget = SlaTarget(first_response=0, resolution=7200)
    working_time: bool = True  # count targets in the role's working hours (roles with `hours`)
    remind_after: Duration = 300.0  # one reminder to the owner when a customer waits this long
    holding_reply: bool = True  # ... and one "your question is noted" message to the customer
    # What each successive breach does: notify supervisors, then hand the
    # conversation to another agent of the role.
    escalation: list[Literal["notify_supervisors", "reassign"]] = ["notify_supervisors", "reassign"]


class AgentConfig(Section):
    id: str = Field(pattern=_ID)
    name: str
    roles: list[str] = []
    # Clear text from the environment ("${ALICE_PASSWORD}") or an argon2 hash
    # ("$argon2id$..."); kept only as a hash in memory, never logged.
    password: SecretStr
    max_concurrent: int | None = Field(None, ge=1)  # default: router.default_capacity
    # Chat-app accounts the agent answers from (see the telegram / qq channels'
    # `agents` settings).  Also linkable at run time with a one-time code.
    hours: str | None = None  # personal hours: a calendar under `hours:`; outside it no new assignments
    telegram_id: int | None = None  # Telegram user id
    qq_id: int | None = None  # QQ number


class WebchatChannel(Section):
    kind: Literal["webchat"]
    role: str | None = None  # fixes the role of every conversation from this channel
    # Widget defaults (a shop's <script data-title= data-color= ...> overrides them):
    title: "Localized | None" = None
    color: str = Field("#1677ff", pattern=r"^#[0-9a-fA-F]{6}$")
    language: Literal["zh", "en"] | None = None  # none = the visitor's browser language
    position: Literal["right", "left"] = "right"


class ApiChannel(Section):
    """站内信: the shop's own site messages, signed HTTP in, signed webhook out."""
    kind: Literal["api"]
    secret: SecretStr  # HMAC-SHA256 key for X-Kefu-Signature, both directions
    callback_url: HttpUrl | None = None  # replies are POSTed here
    role: str | None = None
    callback_timeout: PositiveDuration = 10.0
    retries: int = Field(5, ge=0)  # attempts per delivery before it waits for the next round


class TelegramAgents(Section):
    """Agents answering from Telegram through this bot."""
    # private: each assigned conversation is pushed into the agent's private chat
    #   with the bot; the agent answers by replying to any of those messages.
    #   Suits teams of 1–5 agents.
    # team: an agents' forum supergroup, one topic per conversation; a message
    #   in the topic is the reply.  Suits larger teams (group limit ≈20 msg/min:
    #   relayed customer messages are merged when the group is busy).
    mode: Literal["off", "private", "team"] = "off"
    group_id: int | None = None  # the forum supergroup (team mode)
    # team mode: the roles whose conversations the group gets (none = all).  Everyone
    # in the group reads them, so list only roles every member may see.
    roles: list[str] | None = None


class TelegramChannel(Section):
    kind: Literal["telegram"]
    token: SecretStr  # bot token from @BotFather
    api_base: str = "https://api.telegram.org"  # Bot API server (a local one, or a test fake)
    mode: Literal["polling", "webhook"] = "polling"
    # webhook mode: Telegram POSTs to {public_url}/telegram/{channel}/webhook with this secret
    public_url: str | None = None
    webhook_secret: SecretStr | None = None
    role: str | None = None
    customers: bool = True  # private chats with the bot are customer conversations
    agents: TelegramAgents = TelegramAgents()

    @model_validator(mode="after")
    def _webhook(self) -> "TelegramChannel":
        if self.mode == "webhook" and (not self.public_url or not self.webhook_secret):
            raise ValueError("webhook mode needs public_url and webhook_secret")
        if self.agents.mode == "team" and self.agents.group_id is None:
            raise ValueError("agents.mode team needs agents.group_id (the forum supergroup)")
        return self


class QQAgents(Section):
    """Agents answering from QQ: conversations relayed to their private QQ or a group."""
    mode: Literal["off", "private", "group"] = "off"
    group_id: int | None = None  # agents' QQ group (group mode)
    # group mode: the roles whose conversations the group gets (none = all).  Everyone
    # in the group reads them, so list only roles every member may see.
    roles: list[str] | None = None


class QQChannel(Section):
    """QQ through OneBot v11 (NapCat, Lagrange.OneBot, go-cqhttp)."""
    kind: Literal["qq"]
    # reverse: the OneBot implementation connects to ws://<web.listen>/onebot/{channel}/ws
    # forward: kefu connects to `url`
    mode: Literal["reverse", "forward"] = "reverse"
    url: str | None = None  # forward mode: ws://127.0.0.1:3001
    access_token: SecretStr | None = None  # checked as "Authorization: Bearer ..." both ways
    self_id: int | None = None  # the bot's QQ number; other X-Self-ID values are refused
    auto_accept_friends: bool = False
    send_rate: float = Field(1.0, gt=0)  # messages per second the bot sends
    role: str | None = None
    customers: bool = True
    agents: QQAgents = QQAgents()

    @model_validator(mode="after")
    def _forward(self) -> "QQChannel":
        if self.mode == "forward" and not self.url:
            raise ValueError("forward mode needs url (ws://host:port of the OneBot server)")
        if self.agents.mode == "group" and self.agents.group_id is None:
            raise ValueError("agents.mode group needs agents.group_id")
        return self


class PluginChannel(Section):
    """A connector class of your own: ``class: "package.module:ClassName"``."""
    kind: Literal["plugin"]
    class_: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    role: str | None = None
    options: dict[str, Any] = {}


ChannelConfig = Annotated[Union[WebchatChannel, ApiChannel, TelegramChannel, QQChannel, PluginChannel],
                          Field(discriminator="kind")]




class QuickReply(Section):
    """A template an agent sends with `/q name` (console, Telegram, QQ).

    Variables in braces are filled from the conversation: {customer_name},
    {agent_name}, {order_no} (the last order number seen), {channel}, and any
    customer attribute; one without a value is asked of the agent, never sent
    (aggregator/quick_replies.py)."""
    name: str = Field(pattern=r"^[\w-]{1,32}$")
    text: str | Localized


class SupervisorConfig(Section):
    restart_initial: PositiveDuration = 1.0  # before the first restart of a failed connector
    restart_max: PositiveDuration = 60.0  # backoff doubles up to this


class Settings(Section):
    state_dir: Path = Path("./data")  # embedded Redis data, lock file
    log: LogConfig = LogConfig()
    redis: RedisConfig = RedisConfig()
    web: WebConfig = WebConfig()
    bus: BusConfig = BusConfig()
    router: RouterConfig = RouterConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    limits: LimitsConfig = LimitsConfig()
    archive: ArchiveConfig = ArchiveConfig()  # storage/archive/config.py
    retention: RetentionConfig = RetentionConfig()
    roles: dict[Annotated[str, Field(pattern=_ID)], RoleConfig] = Field(default_factory=_default_roles)
    hours: dict[str, WorkingHoursConfig] = {}  # named calendars (routing/working_hours.py)
    tiers: TiersConfig = TiersConfig()
    sla: SlaConfig = SlaConfig()
    # Automatic messages: override any default template of routing/automation.py
    # by name, e.g. {welcome: {zh: ..., en: ...}}; `name@channel` or `name@role`
    # overrides it for one channel or role.
    messages: dict[str, Localized] = {}
    bot_name: Localized = Localized(zh="小助手", en="Assistant")
    agents: list[AgentConfig] = []
    quick_replies: list[QuickReply] = []
    faq: list[FaqEntry] = []
    channels: dict[Annotated[str, Field(pattern=_ID)], ChannelConfig] = {"webchat": WebchatChannel(kind="webchat")}
    shop: ShopConfig | None = None  # where orders are read: storage/shop/config.py

    @field_validator("roles", mode="before")
    @classmethod
    def _merge_roles(cls, v: Any) -> Any:
        """Configured roles are added to the five built-in ones; an entry for a
        built-in role replaces the keys it sets (`aftersales: {permissions: [...]}`)."""
        if isinstance(v, dict):
            merged = {k: r.model_dump(exclude_unset=True) for k, r in _default_roles().items()}
            for k, r in v.items():
                merged[k] = {**merged.get(k, {}), **r} if isinstance(r, dict) else r
            return merged
        return v

    @field_validator("roles", mode="after")
    @classmethod
    def _role_permissions(cls, v: dict[str, RoleConfig]) -> dict[str, RoleConfig]:
        for name, rc in v.items():
            if rc.permissions is None:
                rc.permissions = default_permissions(name)
        return v

    @model_validator(mode="after")
    def _references(self) -> "Settings":
        """Names that must exist: agents unique, roles and calendars referred to.
        Every problem is one line 'path: message' (parse() gives each its line)."""
        problems: list[str] = []
        seen: set[str] = set()
        for i, a in enumerate(self.agents):
            if a.id in seen:
                problems.append(f"agents[{i}].id: agent id {a.id!r} is used twice")
            seen.add(a.id)
        roles = set(self.roles)

        def role(where: str, r: str | None) -> None:
            if r and r not in roles:
                problems.append(f"{where}: unknown role {r!r} (roles: {', '.join(sorted(roles))})")
        for i, a in enumerate(self.agents):
            for r in a.roles:
                role(f"agents[{i}].roles", r)
        for name, ch in self.channels.items():
            role(f"channels.{name}.role", ch.role)
            for r in getattr(getattr(ch, "agents", None), "roles", None) or []:
                role(f"channels.{name}.agents.roles", r)
        role("router.default_role", self.router.default_role)
        for r in self.router.keywords:
            role("router.keywords", r)
        menus: dict[int, str] = {}
        for name, rc in self.roles.items():
            role(f"roles.{name}.fallback", rc.fallback)
            if rc.hours and rc.hours not in self.hours:
                problems.append(f"roles.{name}.hours: unknown calendar {rc.hours!r} "
                                f"(defined under hours: {', '.join(sorted(self.hours)) or 'none'})")
            if rc.menu is not None:
                if rc.menu in menus:
                    problems.append(f"roles.{name}.menu: number {rc.menu} is also used by {menus[rc.menu]}")
                menus[rc.menu] = name
        for i, a in enumerate(self.agents):
            if a.hours and a.hours not in self.hours:
                problems.append(f"agents[{i}].hours: unknown calendar {a.hours!r}")
        for a in self.router.vip_agents:
            if a not in seen:
                problems.append(f"router.vip_agents: unknown agent {a!r}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def capacity(self, agent: AgentConfig) -> int:
        return agent.max_concurrent or self.router.default_capacity


class ConfigError(Exception):
    """A config file that cannot be used; `problems` are 'file:line: path: message'."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load(path: str | Path | None) -> Settings:
    """Read and validate a config file; None means the built-in defaults."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return parse(text, str(path))


def parse(text: str, source: str = "config.yaml") -> Settings:
    try:
        tree = YAML(typ="rt").load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else "?"
        raise ConfigError([f"{source}:{line}: YAML syntax: {exc.problem or exc}"]) from None
    if tree is None:
        tree = CommentedMap()
    if not isinstance(tree, dict):
        raise ConfigError([f"{source}:1: the file must be a mapping of keys"])
    problems: list[str] = []
    data = _expand(tree, (), problems, source, tree)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc, msg = _yaml_path(tree, tuple(err["loc"])), err["msg"]
            if not loc and msg.startswith("Value error, "):  # cross-reference checks name their paths
                for line in msg.removeprefix("Value error, ").splitlines():
                    path, _, text = line.partition(": ")
                    loc = _parse_path(path)
                    problems.append(f"{source}:{_line_of(tree, loc)}: {_fmt(loc)}: {text}")
                continue
            if err["type"] == "extra_forbidden":
                msg = _unknown_key(tuple(err["loc"]))
            problems.append(f"{source}:{_line_of(tree, loc)}: {_fmt(loc)}: {msg}")
    if problems:
        raise ConfigError(problems)
    return settings


def _expand(node: Any, path: tuple, problems: list[str], source: str, root: Any) -> Any:
    """Plain Python values with ${VAR} replaced; missing variables are recorded."""
    if isinstance(node, dict):
        return {k: _expand(v, path + (k,), problems, source, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, path + (i,), problems, source, root) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match) -> str:
            value = os.environ.get(m.group(1))
            if value is not None:
                return value
            if m.group(2) is not None:
                return m.group(2)
            problems.append(f"{source}:{_line_of(root, path)}: {_fmt(path)}: "
                            f"environment variable {m.group(1)} is not set")
            return ""
        return _VAR.sub(sub, str(node))
    return node


def _parse_path(dotted: str) -> tuple:
    out: list[Any] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return tuple(out)


_UNION_TAGS = {"webchat", "api", "telegram", "qq", "plugin"}


def _unknown_key(loc: tuple) -> str:
    """'unknown key `chanels` — did you mean `channels`?' for a key no model has."""
    key, known = str(loc[-1]), _keys_at(loc[:-1])
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if near:
        return f"unknown key `{key}` — did you mean `{near[0]}`?"
    return f"unknown key `{key}`" + (f" (keys here: {', '.join(sorted(known))})" if known else "")


def _keys_at(loc: tuple) -> list[str]:
    """The keys the schema knows at a pydantic error location (tags of unions included)."""
    node: Any = Settings
    for part in loc:
        node = _child(node, part)
        if node is None:
            return []
    node = _plain(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [f.alias or name for name, f in node.model_fields.items()]
    return []


def _plain(t: Any) -> Any:
    """`t` without Annotated[...] and `| None`."""
    while True:
        if get_origin(t) is Annotated:
            t = get_args(t)[0]
        elif get_origin(t) in (Union, types.UnionType) and type(None) in get_args(t) and len(get_args(t)) == 2:
            t = next(a for a in get_args(t) if a is not type(None))
        else:
            return t


def _child(t: Any, part: Any) -> Any:
    t = _plain(t)
    if isinstance(t, type) and issubclass(t, BaseModel):
        return next((f.annotation for name, f in t.model_fields.items() if part in (name, f.alias)), None)
    if get_origin(t) is dict:
        return get_args(t)[1]
    if get_origin(t) is list:
        return get_args(t)[0]
    if get_origin(t) in (Union, types.UnionType):  # a channel: pydantic names the `kind` it tried
        for member in map(_plain, get_args(t)):
            kind = getattr(member, "model_fields", {}).get("kind")
            if kind is not None and get_args(kind.annotation) == (part,):
                return member
    return None


def _yaml_path(tree: Any, loc: tuple) -> tuple:
    """A pydantic error location as a path in the file: union tags that are
    not keys of the file are dropped, field names mapped back to their alias."""
    out: list[Any] = []
    node: Any = tree
    for part in loc:
        if part == "class_":
            part = "class"
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif part in _UNION_TAGS:
            continue
        else:
            node = None
        out.append(part)
    return tuple(out)


def _line_of(tree: Any, path: tuple) -> int:
    """Line of the deepest node of `path` present in the file."""
    node, line = tree, 1
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
        else:
            break
        node = node[part]
    return line


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"
