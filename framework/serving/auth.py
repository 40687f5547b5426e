"""Bearer tokens to principals: who is calling `ragtune serve`, and so what they may read.

Config maps each token to a user and groups (`serve.tokens`). The token itself never sits
in ragtune.yaml: an entry names the environment variable holding it (`token_env`) or
gives its sha256 (`token_sha256`, for tokens handed out elsewhere). Both are kept only as
sha256 digests in memory, and a presented token is compared to every digest in constant
time. The principal comes from the token alone: nothing in a request can add a group.

Example:
    >>> from framework.config import ConfigError, TokenConfig
    >>> table = TokenTable.from_config([TokenConfig(user="ana", groups=["hr"], token_env="T")], environ={"T": "s3cret"})
    >>> table.principal("Bearer s3cret")
    Principal(user='ana', groups=('hr',))
    >>> table.principal("Bearer guess") is None
    True
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping, Sequence

from framework.config import ConfigError, TokenConfig
from framework.records import Principal


class ServeConfigError(ConfigError):
    """`serve:` cannot be used as configured (a token's variable unset, no tokens at all)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenTable:
    principals: tuple[tuple[str, Principal], ...]  # (sha256 hex of a token, who it stands for)

    @classmethod
    def from_config(cls, tokens: Sequence[TokenConfig], *, environ: Mapping[str, str]) -> "TokenTable":
        """Resolve every `serve.tokens` entry; all problems are reported at once."""
        rows, errors = [], []
        for i, t in enumerate(tokens):
            value = digest(environ[t.token_env]) if t.token_env and environ.get(t.token_env) else t.token_sha256
            if value is None:
                errors.append(f"serve.tokens.{i} ({t.user}): environment variable {t.token_env} is not set or empty; "
                              "export the token under that name before `ragtune serve`")
                continue
            rows.append((value, Principal(user=t.user, groups=tuple(t.groups))))
        seen = [h for h, _ in rows]
        if len(set(seen)) != len(seen):
            errors.append("serve.tokens: two entries have the same token; give each principal its own")
        if not tokens:
            errors.append("serve.tokens is empty, so every request would be refused with 401; add a token "
                          "(see docs/guides/serving.md)")
        if errors:
            raise ServeConfigError("cannot serve:\n  " + "\n  ".join(errors))
        return cls(tuple(rows))

    def principal(self, authorization: str | None) -> Principal | None:
        """The principal of an `Authorization: Bearer <token>` header, or None (no header, unknown token)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = digest(token.strip())
        found = None
        for known, principal in self.principals:  # no early exit: the time does not depend on which matched
            if hmac.compare_digest(known, presented):
                found = principal
        return found
