"""Who is asking: API keys, JWT bearer tokens and staff sessions, resolved to a Principal.

Credentials live in the store as records (tenant ``""``): API keys and session tokens as
SHA-256 digests (they are long random secrets), staff passwords as scrypt hashes. A
:class:`Principal` carries one role and the tenants it is granted (``*`` = every tenant).
What each role may do is decided by the HTTP layer (``api/access.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from agilecity.broker.broker import Broker
from agilecity.broker.timeutil import now_iso
from agilecity.errors import AgileCityError, BadRequestDataError, ResourceNotFoundError
from agilecity.store.base import Record

ROLES = ("admin", "manager", "operator", "device", "public")
KEY, USER, SESSION = "api_key", "user", "session"
ALL_TENANTS = "*"
KEY_PREFIX = "ack"
_CACHE_SECONDS = 5.0  # a revoked key or ended session stops working within this time
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class UnauthorizedError(AgileCityError):
    """No valid credentials (401)."""

    status = 401
    error_type = "Unauthorized"
    title = "Unauthorized"

    @property
    def type_uri(self) -> str:
        """NGSI-LD defines no authentication error type: RFC 9457's about:blank."""
        return "about:blank"


class ForbiddenError(AgileCityError):
    """Valid credentials without the right to do this (403)."""

    status = 403
    error_type = "Forbidden"
    title = "Forbidden"

    @property
    def type_uri(self) -> str:
        """NGSI-LD defines no authorisation error type: RFC 9457's about:blank."""
        return "about:blank"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a name for the audit log, a role, the tenants granted."""

    name: str
    role: str
    tenants: frozenset[str]

    @property
    def public(self) -> bool:
        """True for an anonymous visitor."""
        return self.role == "public"

    def may_use(self, tenant: str) -> bool:
        """Whether this principal is granted the tenant (public data is readable in all)."""
        return self.public or ALL_TENANTS in self.tenants or tenant in self.tenants


PUBLIC = Principal("public", "public", frozenset())
OPEN_MODE = Principal("open-mode", "admin", frozenset({ALL_TENANTS}))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    """An scrypt hash with a random salt, as ``scrypt$n$r$p$salt$hash`` (hex)."""
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${derived.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether the password matches an ``hash_password`` result (constant-time compare)."""
    try:
        _, n, r, p, salt, expected = stored.split("$")
        derived = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(derived.hex(), expected)


def _check_grant(role: str, tenants: list[str]) -> None:
    if role not in ROLES or role == "public":
        raise BadRequestDataError(f"role must be one of {', '.join(ROLES[:-1])}, not {role!r}")
    if not tenants:
        raise BadRequestDataError("at least one tenant ('' is the default tenant, * all)")


@dataclass
class JwtPolicy:
    """How bearer JWTs are verified: a shared secret (HS256) or an issuer's key set."""

    secret: str = ""
    jwks_url: str = ""
    issuer: str = ""
    audience: str = ""


class Credentials:
    """Issue, revoke and check credentials; a small in-memory cache keeps checks cheap."""

    def __init__(self, broker: Broker, jwt_policy: JwtPolicy | None = None,
                 session_hours: float = 8.0) -> None:  # fmt: skip
        self.broker = broker
        self.jwt_policy = jwt_policy or JwtPolicy()
        self.session_hours = session_hours
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._jwks: jwt.PyJWKClient | None = None
        if self.jwt_policy.jwks_url:
            self._jwks = jwt.PyJWKClient(self.jwt_policy.jwks_url, cache_keys=True)

    # -- API keys ----------------------------------------------------------------------

    async def create_key(self, role: str, tenants: list[str], name: str = "") -> tuple[str, str]:
        """A new API key: (key id, the secret token, shown once)."""
        _check_grant(role, tenants)
        key_id = secrets.token_hex(6)
        token = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        doc = {"id": key_id, "name": name or key_id, "role": role, "tenants": sorted(tenants),
               "hash": _digest(token), "created_at": now_iso(), "revoked_at": None}  # fmt: skip
        await self.broker.put_record(Record(KEY, "", key_id, doc), create=True)
        return key_id, token

    async def list_keys(self) -> list[dict[str, Any]]:
        """Every key's description (never its secret or hash)."""
        records = await self.broker.list_records(KEY, "")
        return [{k: v for k, v in r.doc.items() if k != "hash"} for r in records]

    async def revoke_key(self, key_id: str) -> None:
        """Revoke a key (it stays listed, marked revoked)."""
        record = await self.broker.get_record(KEY, "", key_id)
        if record is None:
            raise ResourceNotFoundError(f"no API key {key_id!r}")
        record.doc["revoked_at"] = now_iso()
        await self.broker.put_record(record, create=False)
        self._cache.clear()

    async def _key_principal(self, token: str) -> Principal | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        record = await self.broker.get_record(KEY, "", parts[1])
        if record is None or record.doc.get("revoked_at"):
            return None
        if not hmac.compare_digest(record.doc["hash"], _digest(token)):
            return None
        doc = record.doc
        return Principal(f"key:{doc['name']}", doc["role"], frozenset(doc["tenants"]))

    # -- staff accounts and sessions ---------------------------------------------------

    async def add_user(self, username: str, password: str, role: str, tenants: list[str]) -> None:
        """A local staff account (for the console)."""
        _check_grant(role, tenants)
        if (
            not username
            or len(username) > 64
            or not username.replace("-", "").replace(".", "").replace("_", "").isalnum()
        ):
            raise BadRequestDataError("a user name is 1-64 letters, digits, '-', '_' or '.'")
        if len(password) < 12:
            raise BadRequestDataError("a password has at least 12 characters")
        doc = {"username": username, "role": role, "tenants": sorted(tenants),
               "password": hash_password(password), "created_at": now_iso()}  # fmt: skip
        await self.broker.put_record(Record(USER, "", username, doc), create=True)

    async def login(self, username: str, password: str) -> tuple[str, Principal]:
        """Check a staff password; a new session token and who it is."""
        record = await self.broker.get_record(USER, "", username)
        stored = record.doc["password"] if record is not None else hash_password("x" * 12)
        if not check_password(password, stored) or record is None:  # same work either way
            raise UnauthorizedError("wrong user name or password")
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(hours=self.session_hours)
        doc = {"username": username, "expires_at": expires.isoformat()}
        await self.broker.put_record(Record(SESSION, "", _digest(token), doc), create=True)
        return token, self._user_principal(record.doc)

    async def logout(self, token: str) -> None:
        """End a session."""
        await self.broker.delete_record(SESSION, "", _digest(token))
        self._cache.pop(f"session:{token}", None)

    @staticmethod
    def _user_principal(doc: dict[str, Any]) -> Principal:
        return Principal(f"user:{doc['username']}", doc["role"], frozenset(doc["tenants"]))

    async def _session_principal(self, token: str) -> Principal | None:
        session = await self.broker.get_record(SESSION, "", _digest(token))
        if session is None:
            return None
        if datetime.fromisoformat(session.doc["expires_at"]) < datetime.now(UTC):
            await self.broker.delete_record(SESSION, "", _digest(token))
            return None
        user = await self.broker.get_record(USER, "", session.doc["username"])
        return None if user is None else self._user_principal(user.doc)

    # -- JWT -----------------------------------------------------------------------------

    def _jwt_principal(self, token: str) -> Principal | None:
        policy = self.jwt_policy
        if not policy.secret and self._jwks is None:
            return None
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "PS256", "EdDSA"]
            else:
                key, algorithms = policy.secret, ["HS256"]
            claims = jwt.decode(
                token, key, algorithms=algorithms, options={"require": ["exp", "sub"]},
                issuer=policy.issuer or None, audience=policy.audience or None,
            )  # fmt: skip
        except jwt.PyJWTError:
            return None
        return principal_of_claims(claims)

    # -- resolving a request -------------------------------------------------------------

    async def principal(self, bearer: str | None, session: str | None) -> Principal:
        """Who presents these credentials; PUBLIC without any; UnauthorizedError if invalid."""
        if bearer is None and session is None:
            return PUBLIC
        cache_key = f"bearer:{bearer}" if bearer is not None else f"session:{session}"
        cached = self._cache.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
            found = cached[1]
        else:
            if bearer is not None:
                if bearer.startswith(f"{KEY_PREFIX}_"):
                    found = await self._key_principal(bearer)
                else:
                    found = self._jwt_principal(bearer)
            else:
                found = await self._session_principal(session or "")
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (time.monotonic(), found)
        if found is None:
            raise UnauthorizedError("the credentials are not valid (unknown, revoked or expired)")
        return found


def principal_of_claims(claims: dict[str, Any]) -> Principal | None:
    """The Principal a verified JWT describes: ``role``/``roles`` (or Keycloak's
    ``realm_access.roles``) and ``tenants`` (default: the default tenant)."""
    roles = claims.get("roles") or claims.get("realm_access", {}).get("roles") or []
    if isinstance(claims.get("role"), str):
        roles = [claims["role"], *roles]
    granted = [r for r in ROLES[:-1] if r in roles]  # the strongest role named
    if not granted:
        return None
    tenants = claims.get("tenants", [""])
    if isinstance(tenants, str):
        tenants = [tenants]
    return Principal(f"jwt:{claims['sub']}", granted[0], frozenset(str(t) for t in tenants))
