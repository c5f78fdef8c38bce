"""Credentials in a step's ``vars``, found before the template renders them into a prompt.

A model must never see a secret an orchestrator passed by mistake. Every string value (and every
string nested in lists and maps) is scanned with detect-secrets' pattern plugins plus patterns it
lacks: Google ``AIza…`` keys, Anthropic and OpenAI key prefixes, whole private-key blocks, bearer
tokens and whole JSON web tokens (its entropy plugins are left out: hashes and ids are not credentials). A profile's
``secretsPolicy`` decides: ``redact`` (the default) replaces each secret with a placeholder that
is stable within the step (``[REDACTED:aws-access-key:1]``: the same secret, the same number);
``reject`` fails the step ``INPUT_REJECTED``. Findings name the variable and the kind of secret,
never its value. Pure; detect-secrets is loaded on the first scan, not on import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

SecretsPolicy = Literal["redact", "reject"]
DEFAULT_SECRETS_POLICY: SecretsPolicy = "redact"
MIN_SECRET_GROUP = 8  # a shorter capture group is a prefix marker (ghp, glpat): the whole match is the secret
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Patterns detect-secrets lacks, tried first (a whole key block before its header's pattern), on
# RE2: linear time whatever a hostile var holds (Python's re took 8 s on 8,700 unclosed key
# headers). Anthropic keys come before OpenAI's: both start ``sk-``, and a found key is removed.
_OWN_PATTERNS = (
    (
        "private-key",
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
    ),
    ("anthropic-api-key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai-api-key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35,}"),
    (
        "json-web-token",
        r"\beyJ[A-Za-z0-9_=\-]+\.[A-Za-z0-9_=\-]+\.[A-Za-z0-9_.+/=\-]*",
    ),  # theirs stops before the signature
    ("bearer-token", r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)"),
)


@dataclass(frozen=True)
class SecretFound:
    var: str  # where: ``team``, ``creds.token``, ``notes[2]``
    kind: str  # what: ``aws-access-key``, ``google-api-key``...


def redact_secrets(variables: Mapping[str, Any]) -> tuple[dict[str, Any], list[SecretFound]]:
    """``variables`` with every secret replaced by its placeholder, and what was found."""
    numbers: dict[str, int] = {}
    found: list[SecretFound] = []

    def placeholder(kind: str, secret: str) -> str:
        number = numbers.setdefault(secret, len(numbers) + 1)
        return f"[REDACTED:{kind}:{number}]"

    def clean(value: Any, where: str) -> Any:
        if isinstance(value, str):
            for kind, secret in _secrets(value):
                found.append(SecretFound(where, kind))
                value = value.replace(secret, placeholder(kind, secret))
            return value
        if isinstance(value, Mapping):
            return {key: clean(item, _child(where, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item, f"{where}[{index}]") for index, item in enumerate(value)]
        return value

    redacted = {key: clean(value, _child("", key)) for key, value in variables.items()}
    return redacted, found


def find_secrets(variables: Mapping[str, Any]) -> list[SecretFound]:
    """What ``redact_secrets`` would replace, without replacing it."""
    return redact_secrets(variables)[1]


def _child(where: str, key: str) -> str:
    name = key if _IDENTIFIER.match(key) else f"[{key!r}]"
    return name if not where else (f"{where}.{name}" if not name.startswith("[") else f"{where}{name}")


def _secrets(text: str) -> Iterator[tuple[str, str]]:
    """(kind, secret) for each credential in ``text``, each secret once, the text scanned again
    after each replacement so that overlapping patterns do not report one secret twice."""
    for kind, pattern in _patterns():
        for match in pattern.finditer(text):
            groups = [group for group in match.groups() if group]
            longest = max(groups, key=len, default="")
            secret = longest if len(longest) >= MIN_SECRET_GROUP else match.group(0)
            if secret.strip() and secret in text:
                yield kind, secret
                text = text.replace(secret, "")


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, Any], ...]:
    import re2
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    options = re2.Options()
    options.log_errors = False
    own = tuple((kind, re2.compile(pattern, options)) for kind, pattern in _OWN_PATTERNS)
    plugins: dict[str, type[Any]] = get_mapping_from_secret_type_to_class()
    theirs = tuple(
        (_slug(secret_type), _linear(regex, options))
        for secret_type, plugin in plugins.items()
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ != "IPPublicDetector"
        for regex in plugin().denylist
    )
    return own + theirs


def _linear(regex: re.Pattern[str], options: Any) -> Any:
    """The plugin's pattern on RE2 when RE2 can run it (BasicAuth's is quadratic on Python's re:
    12 s on 250 KB of ``://a:``). The few it cannot (lookaround) keep Python's re: anchored on a
    literal prefix with bounded repeats, they stay linear (``tests/unit/test_secret_scan.py``)."""
    import re2

    options.case_sensitive = not regex.flags & re.IGNORECASE
    try:
        return re2.compile(regex.pattern, options)
    except re2.error:
        return regex
    finally:
        options.case_sensitive = True


def _slug(secret_type: str) -> str:
    """``AWS Access Key`` -> ``aws-access-key``."""
    return re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")
