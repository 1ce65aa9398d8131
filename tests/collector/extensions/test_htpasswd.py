"""htpasswd entries: bcrypt, {SHA}, {SSHA} and plain text checked; other formats refused naming the line."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest

from collector.extensions.htpasswd import HtpasswdError, parse_htpasswd


def test_supported_entries_check_their_password() -> None:
    salt = b"NaCl"
    ssha = base64.b64encode(hashlib.sha1(b"ssha-pass" + salt).digest() + salt).decode()
    sha = base64.b64encode(hashlib.sha1(b"sha-pass").digest()).decode()
    hashed = bcrypt.hashpw(b"bcrypt-pass", bcrypt.gensalt(rounds=4)).decode()
    text = "\n".join([
        "# comment", "", f"a:{hashed}", f"b:{hashed.replace('$2b$', '$2y$')}", f"c:{{SHA}}{sha}",
        f"d:{{SSHA}}{ssha}", "e:plain:with-colon",
    ])
    entries = parse_htpasswd(text, "test")
    assert entries["a"].check("bcrypt-pass") and not entries["a"].check("bcrypt-pas")
    assert entries["b"].check("bcrypt-pass") and entries["b"].slow
    assert entries["c"].check("sha-pass") and not entries["c"].check("sha-pas")
    assert entries["d"].check("ssha-pass") and not entries["d"].check("ssha")
    assert entries["e"].check("plain:with-colon") and not entries["e"].check("plain")
    assert not entries["e"].slow


@pytest.mark.parametrize(("line", "message"), [
    ("u:$apr1$salt$hash", "test line 2 (user 'u'): Apache MD5 ($apr1$) entries are not supported; re-create the "
                          "entry with htpasswd -B"),
    ("u:$6$salt$hash", "SHA-512-crypt ($6$) entries are not supported"),
    ("u:$argon2id$v=19$x", "$argon2id$ entries are not supported"),
    ("u:{MD5}abc", "{MD5} entries are not supported"),
    ("u:{SHA}not*base64", "test line 2 (user 'u'): invalid base64 after {SHA}"),
    ("u:{SHA}" + base64.b64encode(b"short").decode(), "{SHA} digest has the wrong length"),
    ("no-colon", "test line 2: expected user:password-hash"),
    ("u:", "expected user:password-hash"),
])
def test_unsupported_or_malformed_entries_are_refused(line: str, message: str) -> None:
    with pytest.raises(HtpasswdError) as err:
        parse_htpasswd(f"ok:fine\n{line}\n", "test")
    assert message in str(err.value)
