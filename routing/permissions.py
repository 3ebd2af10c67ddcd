"""Who may see and do what (SPEC part 2, "Permissions and masking").

The one place that decides it: the agent API, /api/events, the console (which
reads the API) and the chat-app relays (connectors/telegram_agents.py,
connectors/qq_agents.py) all ask these functions, so an agent sees the same
conversations wherever they work from.

- An agent sees and acts on the conversations of their own roles and those
  assigned to them; a supervisor on all; a conversation with no role is every
  agent's.  Anything else is refused (a list leaves it out).
- Permissions (what an agent may do beyond answering) come per role from
  config.yaml (``roles.<role>.permissions``, defaults below); an agent holds
  the union of their roles'.
"""
from __future__ import annotations

from typing import Iterable, Literal, Mapping, Protocol, get_args

SUPERVISOR = "supervisor"

Permission = Literal["view_orders", "resend_card_key", "view_card_keys", "reveal_pii", "view_reports",
                     "export_evidence"]
PERMISSIONS: frozenset[str] = frozenset(get_args(Permission))

DEFAULT_PERMISSIONS: dict[str, list[str]] = {
    "presales": ["view_orders"],
    "aftersales": ["view_orders", "resend_card_key"],
    "finance": ["view_orders"],
    "dispute": ["view_orders"],
    "supervisor": ["view_orders", "resend_card_key", "view_card_keys", "reveal_pii", "view_reports",
                   "export_evidence"],
}


class Viewer(Protocol):
    """An agent (routing/config.py:AgentConfig), or an agents' group of a chat app."""
    id: str
    roles: list[str]


class RolePermissions(Protocol):
    """A role's entry in config (routing/config.py:RoleConfig)."""
    permissions: list[str] | None


def default_permissions(role: str) -> list[str]:
    """The built-in permissions of a role; roles of the shop's own have none."""
    return list(DEFAULT_PERMISSIONS.get(role, []))


def may_see(viewer: Viewer, conversation: Mapping) -> bool:
    """May `viewer` see and act on a conversation (a view with `role` and `assignee`)?"""
    if SUPERVISOR in viewer.roles:
        return True
    if viewer.id and conversation.get("assignee") == viewer.id:
        return True
    role = conversation.get("role") or ""
    return not role or role in viewer.roles


def permissions_of(viewer: Viewer, roles: Mapping[str, RolePermissions]) -> frozenset[str]:
    """The union of the permissions of the viewer's roles."""
    out: set[str] = set()
    for r in viewer.roles:
        rc = roles.get(r)
        out.update(rc.permissions if rc is not None and rc.permissions is not None else default_permissions(r))
    return frozenset(out)


def holds(viewer: Viewer, permission: str, roles: Mapping[str, RolePermissions]) -> bool:
    """Does the viewer hold `permission` (one of PERMISSIONS) through one of their roles?"""
    return permission in permissions_of(viewer, roles)


class Audience:
    """Everyone in an agents' group of a chat app, seen as one viewer: the group
    gets the conversations of `roles` (None: all, as a supervisor would)."""

    id = ""

    def __init__(self, roles: Iterable[str] | None):
        self.roles = [SUPERVISOR] if roles is None else list(roles)
