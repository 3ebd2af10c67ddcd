"""Agent logins: argon2 password hashes in memory, bearer tokens in Redis.

A clear-text password from config.yaml is hashed at load and the clear text
dropped; a token is stored only as its SHA-256, with the configured expiry,
so a Redis dump reveals neither.  Each agent's token hashes are also kept in
a set, so that removing the agent from config (SIGHUP) revokes every session
they have, in every process: a session ends when its token key is gone
(logout, expiry, revocation), and /api/events sockets watch exactly that.
"""
from __future__ import annotations

import asyncio
import hashlib
import secrets

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aggregator.config import AgentConfig, Settings
from storage.keys import Keys

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(secret: str) -> str:
    return secret if secret.startswith("$argon2") else _hasher.hash(secret)


class Auth:
    def __init__(self, settings: Settings, redis: aioredis.Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self.agents: dict[str, AgentConfig] = {}
        self.apply(settings)

    def apply(self, settings: Settings, hashes: dict[str, str] | None = None) -> list[str]:
        """Switch to `settings` (with `prepare(settings)` done beforehand, off the event loop).
        Returns the ids of agents no longer in config, whose sessions the caller revokes."""
        hashes = hashes if hashes is not None else self.prepare(settings)
        removed = sorted(set(self.agents) - {a.id for a in settings.agents})
        self.ttl = settings.web.token_ttl
        self.agents = {a.id: a for a in settings.agents}
        self.hashes = hashes
        self._dummy = _hasher.hash(secrets.token_hex(8))
        return removed

    @staticmethod
    def prepare(settings: Settings) -> dict[str, str]:
        """The password hashes of a config: slow on purpose, so run it in a thread."""
        return {a.id: hash_password(a.password.get_secret_value()) for a in settings.agents}

    async def login(self, agent_id: str, password: str) -> str | None:
        stored = self.hashes.get(agent_id, self._dummy)  # same work for unknown agents
        try:
            ok = await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or agent_id not in self.agents:
            return None
        token = secrets.token_urlsafe(32)
        digest = token_hash(token)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.token(digest), agent_id, ex=self.ttl)
        pipe.sadd(self.keys.agent_tokens(agent_id), digest)
        pipe.expire(self.keys.agent_tokens(agent_id), self.ttl)  # outlives every token in it
        await pipe.execute()
        return token

    async def logout(self, token: str) -> str | None:
        """End the session; returns its agent id (None: no such session)."""
        digest = token_hash(token)
        agent_id = await self.redis.getdel(self.keys.token(digest))
        if agent_id is None:
            return None
        await self.redis.srem(self.keys.agent_tokens(agent_id.decode()), digest)
        return agent_id.decode()

    async def revoke_agent(self, agent_id: str) -> int:
        """End every session of an agent (in every process); returns how many there were."""
        digests = [d.decode() for d in await self.redis.smembers(self.keys.agent_tokens(agent_id))]
        pipe = self.redis.pipeline(transaction=True)
        for d in digests:
            pipe.delete(self.keys.token(d))
        pipe.delete(self.keys.agent_tokens(agent_id))
        return sum((await pipe.execute())[:-1])

    async def sessions_left(self, agent_id: str) -> int:
        """How many live sessions the agent has (expired tokens are dropped from the set)."""
        key = self.keys.agent_tokens(agent_id)
        digests = list(await self.redis.smembers(key))
        if not digests:
            return 0
        alive = await self.redis.mget([self.keys.token(d.decode()) for d in digests])
        dead = [d for d, a in zip(digests, alive) if a is None]
        if dead:
            await self.redis.srem(key, *dead)
        return len(digests) - len(dead)

    async def agent_for(self, token: str | None) -> AgentConfig | None:
        if not token or len(token) > 256:
            return None
        agent_id = await self.redis.get(self.keys.token(token_hash(token)))
        return self.agents.get(agent_id.decode()) if agent_id else None

    async def live(self, digests: list[str]) -> list[AgentConfig | None]:
        """For each session (token hash): its agent, or None once it ended or the agent left config."""
        if not digests:
            return []
        ids = await self.redis.mget([self.keys.token(d) for d in digests])
        return [self.agents.get(i.decode()) if i else None for i in ids]


def token_hash(token: str) -> str:
    """How a token is stored and named: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()
