"""The Redis store: for several gateway hosts sharing one Redis (or a Sentinel-managed primary).

Atomicity: Redis runs a Lua script to completion before any other command, so each
read-decide-write (`rotate`, `start_session`, `revoke_*`, `hit`) is one script: of two
concurrent rotations of one token, the second script reads the family as the first left it,
finds its token "previous" and answers GRACE. The scripts go through redis-py's
`register_script` (EVALSHA, falling back to loading the script when the server lacks it). They
derive keys from data (token -> sid -> family), so this backend does not support Redis Cluster.

Keys, under a configurable prefix (default `gw:`), all with a TTL so Redis never keeps garbage:

    tok:<hash>  hash {sid, idle}                       until the family's absolute expiry
    fam:<sid>   hash {sub, data, exp, cur, prev, rot, rev}   until the family's absolute expiry
    sub:<sub>   set of sids                             until the last of them expires
    lnk:<link>  set of sids (a provider's session/user)  until the last of them expires
    rev         sorted set sid -> revoked_at            entries trimmed past the retention
    ctr:<key>   hash {n, end}                           until the window ends

Expiry is decided by the caller's `now` inside the scripts; TTLs (relative, so they agree with
any clock) only collect garbage. Counters keep their window's end in the key rather than relying
on INCR + PEXPIRE NX, so the window follows `now` exactly as in the SQL backends; it is still one
atomic round trip. Times are sent and stored as decimal strings (`repr`, `%.17g`), never through
Lua's 14-digit `tostring`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlunsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.store.base import (
    DEFAULT_REVOCATION_RETENTION,
    INVALID,
    CounterWindow,
    RefreshStore,
    Rotation,
    RotationOutcome,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    check_session_ttls,
    describe_cause,
    split_url,
)

__all__ = ["RedisStore"]

# Shared by every script: ARGV[1] is the key prefix.
PREAMBLE = """
local p = ARGV[1]
local function num(x) return string.format('%.17g', x) end
local function ms(seconds) return string.format('%d', math.max(1, math.ceil(seconds * 1000))) end
local function extend(key, ttl)
  if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
local function revoke(sid, now_arg, retention)
  local rev = p .. 'rev'
  redis.call('HSET', p .. 'fam:' .. sid, 'rev', now_arg)
  redis.call('ZADD', rev, 'NX', now_arg, sid)
  redis.call('ZREMRANGEBYSCORE', rev, '-inf', '(' .. num(tonumber(now_arg) - retention))
  redis.call('PEXPIRE', rev, ms(retention))
end
"""

# ARGV: prefix, sid, sub, token hash, data, now, absolute ttl, idle ttl
START_SESSION = (
    PREAMBLE
    + """
local fam, tok = p .. 'fam:' .. ARGV[2], p .. 'tok:' .. ARGV[4]
if redis.call('EXISTS', fam, tok) > 0 then return 0 end
local now = tonumber(ARGV[6])
local exp = now + tonumber(ARGV[7])
local ttl = ms(exp - now)
redis.call('HSET', fam, 'sub', ARGV[3], 'data', ARGV[5], 'exp', num(exp), 'cur', ARGV[4])
redis.call('PEXPIRE', fam, ttl)
redis.call('HSET', tok, 'sid', ARGV[2], 'idle', num(math.min(now + tonumber(ARGV[8]), exp)))
redis.call('PEXPIRE', tok, ttl)
redis.call('SADD', p .. 'sub:' .. ARGV[3], ARGV[2])
extend(p .. 'sub:' .. ARGV[3], ttl)
return 1
"""
)

# ARGV: prefix, token hash, new token hash, now, idle ttl, grace, retention
# The same rule as gateway.store.base.judge_rotation.
ROTATE = (
    PREAMBLE
    + """
local token = redis.call('HMGET', p .. 'tok:' .. ARGV[2], 'sid', 'idle')
local sid = token[1]
if not sid then return {'invalid'} end
local fam = p .. 'fam:' .. sid
local f = redis.call('HMGET', fam, 'sub', 'data', 'exp', 'cur', 'prev', 'rot', 'rev')
local now, exp = tonumber(ARGV[4]), tonumber(f[3])
if not f[1] or f[7] or now >= exp then return {'invalid'} end
if f[4] == ARGV[2] then
  if now >= tonumber(token[2]) then return {'invalid'} end
  local new = p .. 'tok:' .. ARGV[3]
  if redis.call('EXISTS', new) == 1 then return redis.error_reply('token hash exists') end
  redis.call('HSET', new, 'sid', sid, 'idle', num(math.min(now + tonumber(ARGV[5]), exp)))
  redis.call('PEXPIRE', new, ms(exp - now))
  redis.call('HSET', fam, 'cur', ARGV[3], 'prev', ARGV[2], 'rot', ARGV[4])
  return {'rotated', sid, f[1], f[2], f[3]}
end
if f[5] == ARGV[2] and now - tonumber(f[6]) <= tonumber(ARGV[6]) then
  return {'grace', sid, f[1], f[2], f[3]}
end
revoke(sid, ARGV[4], tonumber(ARGV[7]))
return {'reused', sid, f[1], f[2], f[3]}
"""
)

# ARGV: prefix, token hash, now, retention
REVOKE_TOKEN = (
    PREAMBLE
    + """
local sid = redis.call('HGET', p .. 'tok:' .. ARGV[2], 'sid')
if not sid then return false end
local f = redis.call('HMGET', p .. 'fam:' .. sid, 'exp', 'rev')
if not f[1] or tonumber(f[1]) <= tonumber(ARGV[3]) then return false end
if not f[2] then revoke(sid, ARGV[3], tonumber(ARGV[4])) end
return sid
"""
)

# ARGV: prefix, set key ('sub:' .. sub, or 'lnk:' .. link), now, retention
REVOKE_SET = (
    PREAMBLE
    + """
local key = p .. ARGV[2]
local revoked = {}
for _, sid in ipairs(redis.call('SMEMBERS', key)) do
  local f = redis.call('HMGET', p .. 'fam:' .. sid, 'exp', 'rev')
  if not f[1] then
    redis.call('SREM', key, sid)
  elseif not f[2] and tonumber(f[1]) > tonumber(ARGV[3]) then
    revoke(sid, ARGV[3], tonumber(ARGV[4]))
    revoked[#revoked + 1] = sid
  end
end
return revoked
"""
)

# ARGV: prefix, sid, link... The link sets live as long as the family they name can: its key's
# TTL is its absolute expiry.
LINK = (
    PREAMBLE
    + """
local ttl = redis.call('PTTL', p .. 'fam:' .. ARGV[2])
if ttl <= 0 then return 0 end
for i = 3, #ARGV do
  local key = p .. 'lnk:' .. ARGV[i]
  redis.call('SADD', key, ARGV[2])
  extend(key, ttl)
end
return 1
"""
)

# KEYS: counter; ARGV: prefix (unused), now, window
HIT = (
    PREAMBLE
    + """
local now = tonumber(ARGV[2])
local c = redis.call('HMGET', KEYS[1], 'n', 'end')
local n, e = tonumber(c[1]), c[2]
if not n or tonumber(e) <= now then
  n, e = 0, num(now + tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[1], 'n', n + 1, 'end', e)
redis.call('PEXPIRE', KEYS[1], ms(tonumber(e) - now))
return {n + 1, e}
"""
)


class RedisStore(RefreshStore):
    """Refresh-token store in Redis; connects on first use."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        where: str,
        prefix: str = "gw:",
        revocation_retention: float = DEFAULT_REVOCATION_RETENTION,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._client = client
        self._where = where
        self._prefix = prefix
        self._retention = revocation_retention
        self._secrets = secrets
        self._start_session = client.register_script(START_SESSION)
        self._rotate = client.register_script(ROTATE)
        self._revoke_token = client.register_script(REVOKE_TOKEN)
        self._revoke_set = client.register_script(REVOKE_SET)
        self._hit = client.register_script(HIT)
        self._link = client.register_script(LINK)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        revocation_retention: float = DEFAULT_REVOCATION_RETENTION,
        connect_timeout: float = 2.0,
        timeout: float = 2.0,
    ) -> RedisStore:
        """The store a `redis:` or `rediss:` URL names; `?prefix=` sets the key prefix."""
        parts, query = split_url(url)
        prefix = query.pop("prefix", "gw:")
        try:
            client = redis.asyncio.Redis.from_url(
                urlunsplit(parts._replace(query=urlencode(query))),
                decode_responses=True,
                socket_connect_timeout=connect_timeout,
                socket_timeout=timeout,
                # One immediate retry reconnects a pooled connection Redis closed (a restart);
                # more would only delay StoreUnavailable while Redis is down.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError:
            raise StoreConfigError("store: malformed redis URL") from None
        return cls(
            client,
            where=f"{parts.hostname or 'localhost'}:{parts.port or 6379}",
            prefix=prefix,
            revocation_retention=revocation_retention,
            secrets=(parts.password,) if parts.password else (),
        )

    @contextmanager
    def _boundary(self) -> Iterator[None]:
        """Translate redis-py's exceptions, once, into the store's."""
        try:
            yield
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.ReadOnlyError,  # a replica, mid-failover
            redis.exceptions.InvalidResponse,  # something that is not Redis answers there
            OSError,
        ) as exc:
            cause = describe_cause(exc, secrets=self._secrets)
            raise StoreUnavailable(f"Redis store at {self._where} unavailable: {cause}") from exc
        except redis.exceptions.RedisError as exc:
            cause = describe_cause(exc, secrets=self._secrets)
            raise StoreError(f"Redis store at {self._where}: {cause}") from exc
        except RuntimeError as exc:
            # uvloop refuses a write to a connection Redis reset ("the handler is closed") with
            # RuntimeError where asyncio's own loop raises nothing; redis-py drops that
            # connection, so the next call reconnects. Any other RuntimeError is a bug.
            if "closed" not in str(exc):
                raise
            raise StoreUnavailable(f"Redis store at {self._where} unavailable: reset") from exc

    async def _script(self, script: Any, *args: object, keys: tuple[str, ...] = ()) -> Any:
        with self._boundary():
            return await script(keys=list(keys), args=[self._prefix, *args])

    # -- sessions ----------------------------------------------------------------------------

    async def start_session(
        self,
        *,
        sid: str,
        sub: str,
        token_hash: str,
        data: str,
        now: float,
        absolute_ttl: float,
        idle_ttl: float,
    ) -> None:
        check_session_ttls(absolute_ttl, idle_ttl)
        created = await self._script(
            self._start_session,
            sid,
            sub,
            token_hash,
            data,
            repr(now),
            repr(absolute_ttl),
            repr(idle_ttl),
        )
        if not created:
            raise StoreError("Redis store: session id or token hash already exists")

    async def rotate(
        self, *, token_hash: str, new_token_hash: str, now: float, idle_ttl: float, grace: float
    ) -> Rotation:
        reply = await self._script(
            self._rotate,
            token_hash,
            new_token_hash,
            repr(now),
            repr(idle_ttl),
            repr(grace),
            repr(self._retention),
        )
        outcome = RotationOutcome(reply[0])
        if outcome is RotationOutcome.INVALID:
            return INVALID
        sid, sub, data, expires_at = reply[1:]
        return Rotation(outcome, sid, sub, data, float(expires_at))

    async def revoke_token(self, *, token_hash: str, now: float) -> str | None:
        sid = await self._script(self._revoke_token, token_hash, repr(now), repr(self._retention))
        return str(sid) if sid else None

    async def revoke_subject(self, *, sub: str, now: float) -> list[str]:
        sids = await self._script(self._revoke_set, "sub:" + sub, repr(now), repr(self._retention))
        return [str(sid) for sid in sids]

    async def link_session(self, *, sid: str, links: Iterable[str]) -> None:
        await self._script(self._link, sid, *links)

    async def revoke_linked(self, *, link: str, now: float) -> list[str]:
        sids = await self._script(self._revoke_set, "lnk:" + link, repr(now), repr(self._retention))
        return [str(sid) for sid in sids]

    async def revocations(self, *, since: float, now: float) -> list[tuple[str, float]]:
        cutoff = max(since, now - self._retention)
        with self._boundary():
            rows: Any = await self._client.zrangebyscore(
                self._prefix + "rev", cutoff, "+inf", withscores=True
            )
        return [(str(sid), float(at)) for sid, at in rows]

    # -- counters ----------------------------------------------------------------------------

    def _counter(self, key: str) -> str:
        return f"{self._prefix}ctr:{key}"

    async def hit(self, *, key: str, window: float, now: float) -> CounterWindow:
        count, window_end = await self._script(
            self._hit, repr(now), repr(window), keys=(self._counter(key),)
        )
        return CounterWindow(int(count), float(window_end) - now)

    async def peek(self, *, key: str, window: float, now: float) -> CounterWindow:
        with self._boundary():
            values = await self._client.hmget(self._counter(key), ["n", "end"])
        count, window_end = values[0], values[1]
        if count is None or window_end is None or float(window_end) <= now:
            return CounterWindow(0, 0.0)
        return CounterWindow(int(count), float(window_end) - now)

    async def reset(self, *, key: str) -> None:
        with self._boundary():
            await self._client.delete(self._counter(key))

    # -- lifecycle ---------------------------------------------------------------------------

    async def ping(self) -> None:
        with self._boundary():
            await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()
