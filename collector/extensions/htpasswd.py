"""htpasswd files (``user:hash`` a line) for the ``basicauth`` extension.

Supported entries, as Apache's ``htpasswd`` writes them:

* bcrypt, ``$2y$`` / ``$2b$`` / ``$2a$`` (``htpasswd -B``): checked with the ``bcrypt`` package;
* SHA-1, ``{SHA}`` + base64 (``htpasswd -s``), and salted SHA-1, ``{SSHA}`` + base64;
* plain text (``htpasswd -p``, or an inline ``user:password``).

Refused with an error naming the line: Apache MD5 (``$apr1$``, htpasswd's default without ``-B``), the
crypt(3) families ``$1$`` / ``$5$`` / ``$6$`` and any other ``$id$`` or ``{SCHEME}``: re-create such an entry
with ``htpasswd -B``. A 13-character DES-crypt hash cannot be told from a plain-text password and is read as
one (it then never matches what a client sends as its password).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

_BCRYPT = ("$2y$", "$2b$", "$2a$")
_DOLLAR_ID = re.compile(r"^\$[0-9A-Za-z]+\$")
_REFUSED = {"$apr1$": "Apache MD5 ($apr1$)", "$1$": "MD5-crypt ($1$)", "$5$": "SHA-256-crypt ($5$)",
            "$6$": "SHA-512-crypt ($6$)"}
SUPPORTED = "bcrypt ($2y$, htpasswd -B), {SHA} (htpasswd -s), {SSHA} or plain text (htpasswd -p)"


class HtpasswdError(ValueError):
    """An htpasswd entry that cannot be used; the message names the source and line."""


@dataclass(frozen=True)
class Entry:
    kind: str  # "bcrypt", "sha", "ssha", "plain"
    secret: bytes  # the hash (bcrypt), the digest (sha), digest + salt (ssha), or the password (plain)

    @property
    def slow(self) -> bool:
        """Whether checking a password costs real CPU (bcrypt): done off the event loop."""
        return self.kind == "bcrypt"

    def check(self, password: str) -> bool:
        given = password.encode("utf-8", "surrogateescape")
        if self.kind == "bcrypt":
            import bcrypt

            try:
                return bool(bcrypt.checkpw(given, self.secret))
            except ValueError:
                return False
        if self.kind == "sha":
            return hmac.compare_digest(hashlib.sha1(given).digest(), self.secret)  # noqa: S324 - {SHA} is SHA-1
        if self.kind == "ssha":
            digest, salt = self.secret[:20], self.secret[20:]
            return hmac.compare_digest(hashlib.sha1(given + salt).digest(), digest)  # noqa: S324 - {SSHA} is SHA-1
        return hmac.compare_digest(given, self.secret)


def parse_entry(hashed: str, where: str) -> Entry:
    """One entry's hash field; HtpasswdError (naming ``where``) for formats not supported."""
    if hashed.startswith(_BCRYPT):
        try:
            import bcrypt  # noqa: F401
        except ImportError as e:
            raise HtpasswdError(f"{where}: a bcrypt entry needs the bcrypt package (pip install bcrypt)") from e
        return Entry("bcrypt", hashed.encode())
    for prefix, kind, size in (("{SHA}", "sha", 20), ("{SSHA}", "ssha", 21)):
        if hashed.startswith(prefix):
            try:
                raw = base64.b64decode(hashed[len(prefix):], validate=True)
            except ValueError as e:
                raise HtpasswdError(f"{where}: invalid base64 after {prefix}") from e
            if len(raw) < size or (kind == "sha" and len(raw) != 20):
                raise HtpasswdError(f"{where}: {prefix} digest has the wrong length")
            return Entry(kind, raw)
    for prefix, name in _REFUSED.items():
        if hashed.startswith(prefix):
            raise HtpasswdError(f"{where}: {name} entries are not supported; re-create the entry with htpasswd -B "
                                f"(supported: {SUPPORTED})")
    if _DOLLAR_ID.match(hashed) or re.match(r"^\{[A-Za-z0-9-]+\}", hashed):
        scheme = hashed[:hashed.index("$", 1) + 1] if hashed.startswith("$") else hashed[:hashed.index("}") + 1]
        raise HtpasswdError(f"{where}: {scheme} entries are not supported (supported: {SUPPORTED})")
    return Entry("plain", hashed.encode("utf-8", "surrogateescape"))


def parse_htpasswd(text: str, source: str) -> dict[str, Entry]:
    """``user -> entry`` from htpasswd text; blank lines and ``#`` comments skipped. HtpasswdError on a
    malformed or unsupported line (the message names ``source`` and the line, never the password)."""
    out: dict[str, Entry] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source} line {number}"
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise HtpasswdError(f"{where}: expected user:password-hash")
        out[user] = parse_entry(hashed, f"{where} (user {user!r})")
    return out


def merge(*tables: Iterable[tuple[str, Entry]]) -> dict[str, Entry]:
    """Later tables win for a user given twice (``inline`` over ``file``, as upstream)."""
    out: dict[str, Entry] = {}
    for table in tables:
        out.update(table)
    return out


__all__ = ["SUPPORTED", "Entry", "HtpasswdError", "merge", "parse_entry", "parse_htpasswd"]
