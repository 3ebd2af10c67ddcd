"""config.yaml: every key kefu understands, its default and what it is for.

This module is the reference of the configuration file: `Settings` below is
its top level, each model a section, each field a key.  Each package defines
the sections of its own parts — storage/config.py (redis, bus, limits, and the
building blocks: durations, rates, zh/en texts), routing/config.py (router,
roles, sla, agents, quick_replies), connectors/channels.py and
connectors/config.py (channels, supervisor), storage/shop/ (shop, tiers),
routing/working_hours.py (hours), routing/faq.py (faq) — and they are
imported here under their names.  Loading is strict — an unknown key is an
error, a typo must never be silently ignored — and every problem is reported
with its YAML path and line number.  Strings may use ``${VAR}`` (or
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

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

# Every section's model can be imported from here, wherever it is defined.
from connectors.channels import (ApiChannel, PluginChannel, QQAgents, QQChannel, TelegramAgents,
                                 TelegramChannel, WebchatChannel)
from connectors.config import ChannelConfig, SupervisorConfig
from routing.config import (DEFAULT_KEYWORDS, AgentConfig, QuickReply, RoleConfig, RouterConfig,
                            SlaConfig, SlaTarget, default_roles)
from routing.faq import FaqEntry
from routing.permissions import default_permissions
from routing.working_hours import WorkingHoursConfig
from storage.archive.config import ArchiveConfig, RetentionConfig
from storage.config import (ID_PATTERN, ApiLimits, BusConfig, LimitRate, LimitsConfig, Localized, LoginLimits,
                            Rate, RedisConfig, Section, WebchatLimits)
from storage.durations import Duration, WholeSeconds
from storage.shop.config import ShopConfig
from storage.shop.tiers import TiersConfig


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"  # json: one JSON object per line


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
    roles: dict[Annotated[str, Field(pattern=ID_PATTERN)], RoleConfig] = Field(default_factory=default_roles)
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
    channels: dict[Annotated[str, Field(pattern=ID_PATTERN)], ChannelConfig] = {"webchat": WebchatChannel(kind="webchat")}
    shop: ShopConfig | None = None  # where orders are read: storage/shop/config.py

    @field_validator("roles", mode="before")
    @classmethod
    def _merge_roles(cls, v: Any) -> Any:
        """Configured roles are added to the five built-in ones; an entry for a
        built-in role replaces the keys it sets (`aftersales: {permissions: [...]}`)."""
        if isinstance(v, dict):
            merged = {k: r.model_dump(exclude_unset=True) for k, r in default_roles().items()}
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
