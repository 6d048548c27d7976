"""JWT bearer authentication and scopes.

Accepted algorithms and keys come from settings, never from the token: HMAC with
``MLSERVICE_JWT_SECRET`` (or, in development, the secret that ``mlservice up`` generated into
the data directory), or RS/ES/PS with ``MLSERVICE_JWT_PUBLIC_KEY``. ``sub``, ``tenant_id`` and
``exp`` are required; ``nbf``/``iat`` are honoured; ``aud``/``iss`` are checked when configured.

Configuration that would weaken this silently refuses to start (``UnsafeKeyConfig``, raised by
``TokenVerifier``; ``Settings`` refuses a public key next to HMAC algorithms): public-key
algorithms without an audience (any token the identity provider signed for another service would
pass), a key or secret file that group or others may read (a public key file: write), a
development secret shorter than 32 bytes. A token living longer than
``settings.max_token_lifetime_s`` (exp - iat, else exp - nbf, else exp - now) is refused.
"""

from __future__ import annotations

import stat
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from mlservice.config.settings import MIN_SECRET_BYTES, Settings
from resources.tenants.ids import is_valid_tenant
from serving_api.errors import ApiError

SCOPES = (
    "models:read", "models:write", "predictions:write", "jobs:read", "jobs:write",
    "features:read", "features:write", "monitoring:read", "monitoring:write", "deployments:write", "admin",
)
DEFAULT_TOKEN_SCOPES = tuple(s for s in SCOPES if s != "admin")
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mlservice"'}


class KeyNotConfigured(RuntimeError):
    pass


class UnsafeKeyConfig(KeyNotConfigured):
    """A key configuration that would weaken authentication: the API refuses to start."""


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant_id: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _read_protected(path: Path, *, secret: bool) -> str:
    """A key file's text, refused when others may read a secret one or change any one."""
    mode = path.stat().st_mode
    loose = mode & (stat.S_IRWXG | stat.S_IRWXO) if secret else mode & (stat.S_IWGRP | stat.S_IWOTH)
    if loose:
        who = "read or written" if secret else "written"
        raise UnsafeKeyConfig(
            f"{path} may be {who} by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod {'600' if secret else '644'} {path}"
        )
    return path.read_text()


def _read_key(value: str, *, secret: bool) -> str:
    """A PEM given inline, or the path of a file holding it."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text
    return _read_protected(Path(text).expanduser(), secret=secret)


def _dev_secret(path: Path) -> str:
    secret = _read_protected(path, secret=True).strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise UnsafeKeyConfig(f"the development JWT secret {path} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


def verification_key(settings: Settings) -> str:
    if settings.uses_hmac:
        if settings.jwt_secret is not None:
            return settings.jwt_secret.get_secret_value()
        if settings.dev_jwt_secret_path.exists():
            return _dev_secret(settings.dev_jwt_secret_path)
        raise KeyNotConfigured(
            "no JWT key: set MLSERVICE_JWT_SECRET (HS256, 32+ bytes) or MLSERVICE_JWT_PUBLIC_KEY "
            "with MLSERVICE_JWT_ALGORITHMS, or run `mlservice up` to generate a development key"
        )
    if not settings.jwt_public_key:
        raise KeyNotConfigured("MLSERVICE_JWT_ALGORITHMS names public-key algorithms: set MLSERVICE_JWT_PUBLIC_KEY")
    if not settings.jwt_audience:
        raise UnsafeKeyConfig(
            "MLSERVICE_JWT_ALGORITHMS names public-key algorithms but MLSERVICE_JWT_AUDIENCE is not set: "
            "tokens the key's issuer signed for any other service would be accepted"
        )
    return _read_key(settings.jwt_public_key, secret=False)


def signing_key(settings: Settings) -> str:
    if settings.uses_hmac:
        return verification_key(settings)
    if settings.jwt_private_key is None:
        raise KeyNotConfigured("signing with a public-key algorithm needs MLSERVICE_JWT_PRIVATE_KEY")
    return _read_key(settings.jwt_private_key.get_secret_value(), secret=True)


def issue_token(
    settings: Settings, *, tenant_id: str, subject: str, scopes: tuple[str, ...] | list[str], ttl_s: int
) -> str:
    if not is_valid_tenant(tenant_id):
        raise ValueError(f"invalid tenant id '{tenant_id}'")
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    if not 0 < ttl_s <= settings.max_token_lifetime_s:
        raise ValueError(
            f"a token lifetime must be 1 to {settings.max_token_lifetime_s} s (MLSERVICE_MAX_TOKEN_LIFETIME_S), not {ttl_s}"
        )
    now = int(time.time())
    claims = {"sub": subject, "tenant_id": tenant_id, "scope": " ".join(scopes), "iat": now, "nbf": now, "exp": now + ttl_s}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, signing_key(settings), algorithm=settings.jwt_algorithms[0])


# A verified token is remembered (keyed by the whole token, signature included) until its exp,
# at most this long: a signature check costs ~50 us of the event loop per request otherwise.
VERIFIED_CACHE_S = 60.0
VERIFIED_CACHE_MAX = 10_000


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.key = verification_key(settings)
        self.algorithms = list(settings.jwt_algorithms)
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.max_lifetime_s = settings.max_token_lifetime_s
        self._verified: dict[str, tuple[float, Principal]] = {}

    @staticmethod
    def unauthorized(message: str) -> ApiError:
        return ApiError("UNAUTHORIZED", message, None, _BEARER_CHALLENGE)

    def verify_header(self, authorization: str | None) -> Principal:
        if not authorization:
            raise self.unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self.unauthorized("Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip())

    def remembered(self, authorization: str | None) -> Principal | None:
        """The principal of a bearer token verified recently and still valid, without verifying
        anything; None otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        hit = self._verified.get(token.strip()) if scheme.lower() == "bearer" else None
        return hit[1] if hit is not None and time.time() < hit[0] else None

    def verify(self, token: str) -> Principal:
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and now < hit[0]:
            return hit[1]
        principal, expires = self._verify_claims(token)
        if len(self._verified) >= VERIFIED_CACHE_MAX:
            self._verified = {t: v for t, v in self._verified.items() if v[0] > now}
            if len(self._verified) >= VERIFIED_CACHE_MAX:
                self._verified.clear()
        self._verified[token] = (min(expires, now + VERIFIED_CACHE_S), principal)
        return principal

    def _verify_claims(self, token: str) -> tuple[Principal, float]:
        """Full verification (signature, claims); the Principal and the token's exp."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "tenant_id"], "verify_aud": self.audience is not None},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise self.unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise self.unauthorized("token not yet valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise self.unauthorized(f"token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidTokenError:
            raise self.unauthorized("invalid token") from None
        start = claims.get("iat", claims.get("nbf"))
        now = time.time()
        lifetime = float(claims["exp"]) - (now if start is None else min(now, float(start)))
        if lifetime > self.max_lifetime_s:
            raise self.unauthorized(f"token lifetime exceeds the maximum of {self.max_lifetime_s} s")
        tenant_id, subject = claims.get("tenant_id"), claims.get("sub")
        if not is_valid_tenant(tenant_id) or not isinstance(subject, str) or not subject:
            raise self.unauthorized("token carries an invalid tenant_id or sub")
        raw_scope = claims.get("scope", "")
        if isinstance(raw_scope, str):
            scopes = frozenset(raw_scope.split())
        elif isinstance(raw_scope, list) and all(isinstance(s, str) for s in raw_scope):
            scopes = frozenset(raw_scope)
        else:
            raise self.unauthorized("token scope must be a space-separated string")
        return Principal(subject=subject, tenant_id=tenant_id, scopes=scopes), float(claims["exp"])
