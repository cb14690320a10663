"""Who may use the console: users from a file (scrypt-hashed passwords) or a reverse proxy's identity header,
server-side sessions, and the CSRF token every state-changing form carries.

A users file has one user a line, ``name role hash``; ``role`` is ``analyst`` (may decide) or
``read-only``; ``#`` starts a comment. ``distillguard console --add-user NAME`` appends a line.

>>> line = user_line("alice", "analyst", "correct horse")
>>> users = parse_users([line, "# a comment", ""], "users.txt")
>>> users["alice"].role, users["alice"].check("correct horse"), users["alice"].check("wrong")
('analyst', True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from distillguard.errors import ConfigError

ROLES = ("analyst", "read-only")
# scrypt at n=2**14, r=8, p=1: 16 MiB and ~50 ms per check here, the interactive-login setting RFC 7914 suggests.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex) of ``password``.

    >>> hash_password("pw", salt=b"0" * 16).startswith("scrypt$16384$8$1$")
    True
    """
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` string (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class User:
    """A console user: ``name``, ``role`` and (for file users) the password hash."""

    name: str
    role: str
    password_hash: str | None = None

    @property
    def can_decide(self) -> bool:
        return self.role == "analyst"

    def check(self, password: str) -> bool:
        return self.password_hash is not None and verify_password(password, self.password_hash)


def user_line(name: str, role: str, password: str) -> str:
    """The users-file line for a new user (the password is stored only as its scrypt hash)."""
    _check_user(name, role, "the new user")
    return f"{name} {role} {hash_password(password)}"


def _check_user(name: str, role: str, where: str) -> None:
    if not name or any(c.isspace() for c in name):
        raise ConfigError(f"{where}: a user name is one word, got {name!r}")
    if role not in ROLES:
        raise ConfigError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")


def parse_users(lines: Iterable[str], source: str) -> dict[str, User]:
    """Users by name from a users file's lines; a malformed line is a ``ConfigError`` naming ``source:line``."""
    users: dict[str, User] = {}
    for i, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 3 or not parts[2].startswith("scrypt$"):
            raise ConfigError(f"{source}:{i}: expected 'name role scrypt$...' (add users with "
                              "`distillguard console --add-user NAME`)")
        _check_user(parts[0], parts[1], f"{source}:{i}")
        users[parts[0]] = User(parts[0], parts[1], parts[2])
    return users


def load_users(path: Path) -> dict[str, User]:
    """The users of ``path`` (a missing file is a ``ConfigError``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"users file not found: {path}") from exc
    return parse_users(text.splitlines(), str(path))


@dataclass
class Session:
    """A logged-in user and the CSRF token its forms carry."""

    user: User
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    expires: float = 0.0


class Sessions:
    """Server-side sessions keyed by an unguessable cookie value; they end after ``ttl`` seconds idle."""

    def __init__(self, ttl: float = 8 * 3600) -> None:
        self.ttl = ttl
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            for old in [t for t, s in self._by_token.items() if s.expires < now]:  # ended ones, not kept
                del self._by_token[old]
            self._by_token[token] = Session(user, expires=now + self.ttl)
        return token

    def for_header_user(self, user: User) -> str:
        """A session of a user a reverse proxy names: the user's live one (clients without cookies, such as
        scripts, would otherwise start one per request), else a new one."""
        now = time.monotonic()
        with self._lock:
            for token, s in self._by_token.items():
                if s.user == user and s.expires >= now:
                    s.expires = now + self.ttl
                    return token
        return self.start(user)

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._by_token.get(token)
            if session is None or session.expires < now:
                self._by_token.pop(token, None)
                return None
            session.expires = now + self.ttl
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)


def csrf_ok(expected: str, given: object) -> bool:
    """Whether a form's ``csrf`` field matches the session's token (constant time).

    >>> csrf_ok("abc", "abc"), csrf_ok("abc", None), csrf_ok("abc", "abd")
    (True, False, False)
    """
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())
