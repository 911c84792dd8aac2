"""Keep secrets out of run records.

A name is secret when one of its words is a secret word: ``API_KEY``,
``hf_token``, ``dbPassword`` are; ``max_tokens`` and ``keyboard`` are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus, urlsplit

REDACTED = "***REDACTED***"

_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "key",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "sas",
        "passphrase",
        "cookie",
        "session",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def words(name: str) -> list[str]:
    """Split ``camelCase``, ``snake_case``, ``kebab-case`` and ``UPPER_CASE`` into lowercase words."""
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """True when a variable, param or tag name looks like it holds a secret.

    >>> is_secret_name("AWS_SECRET_ACCESS_KEY"), is_secret_name("max_tokens")
    (True, False)
    """
    return any(w in _SECRET_WORDS for w in words(name))


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``values`` with the values of secret-looking names replaced."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in values.items()}


def redact_uri(uri: str) -> str:
    """Hide the password in ``scheme://user:password@host/…`` and secret query parameters (``?password=``)."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    out = uri
    if password is not None:
        netloc = parts.netloc.replace(f":{password}@", f":{REDACTED}@", 1)
        out = out.replace(f"//{parts.netloc}", f"//{netloc}", 1)
    if parts.query:
        items = []
        for item in parts.query.split("&"):
            name, sep, value = item.partition("=")
            plain = unquote_plus(name)
            if sep and value and (is_secret_name(plain) or "password" in plain.lower()):
                item = f"{name}={REDACTED}"
            items.append(item)
        query = "&".join(items)
        if query != parts.query:
            out = out.replace(f"?{parts.query}", f"?{query}", 1)
    return out


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Hide values of secret-looking command-line options (``--token X``, ``--password=X``)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-"):
            name, eq, _value = arg.lstrip("-").partition("=")
            if is_secret_name(name):
                if eq:
                    out.append(f"{arg.split('=', 1)[0]}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(redact_uri(arg) if "://" in arg else arg)
    return out
