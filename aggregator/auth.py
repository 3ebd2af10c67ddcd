"""Agent logins: argon2 password hashes in memory, bearer tokens in Redis.

A clear-text password from config.yaml is hashed at load and the clear text
dropped; a token is stored only as its SHA-256, with the configured expiry,
so a Redis dump reveals neither.
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
        self.apply(settings)

    def apply(self, settings: Settings, hashes: dict[str, str] | None = None) -> None:
        """Switch to `settings` (with `prepare(settings)` done beforehand, off the event loop)."""
        hashes = hashes if hashes is not None else self.prepare(settings)
        self.ttl = settings.web.token_ttl
        self.agents = {a.id: a for a in settings.agents}
        self.hashes = hashes
        self._dummy = _hasher.hash(secrets.token_hex(8))

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
        await self.redis.set(self.keys.token(_digest(token)), agent_id, ex=self.ttl)
        return token

    async def logout(self, token: str) -> None:
        await self.redis.delete(self.keys.token(_digest(token)))

    async def agent_for(self, token: str | None) -> AgentConfig | None:
        if not token or len(token) > 256:
            return None
        agent_id = await self.redis.get(self.keys.token(_digest(token)))
        return self.agents.get(agent_id.decode()) if agent_id else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
