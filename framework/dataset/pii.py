"""Find personal data and secrets in text before anything reaches a training file.

A finetuned model can repeat what it was trained on, so e-mail addresses, phone
numbers, national id numbers, payment card numbers, IBANs and credentials are found
and replaced by a placeholder (`[EMAIL]`, `[PHONE]`, ...) or make their example
dropped. Numbers are confirmed by their checksum where one exists (cards by Luhn,
IBANs by mod 97, both via python-stdnum), and phone numbers by Google's
libphonenumber port (`phonenumbers`), so an order number or a date is not mistaken
for personal data. Extra patterns come from config as named regular expressions.

Example:
    >>> scrubber = Scrubber()
    >>> scrubber.redact("Mail jane.doe@contoso.com or call +1 415-555-0132.")
    ('Mail [EMAIL] or call [PHONE].', Counter({'email': 1, 'phone': 1}))
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

import phonenumbers
from stdnum import iban, luhn
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.us import ssn

# (kind, pattern, validator or None). Secrets first: a key can look like a long number.
# National ids: formats distinctive enough to find in running text, confirmed by python-stdnum's
# check digits where the id has them (US SSN, Canadian SIN, German tax id, French NIR, Spanish
# DNI/NIE, Italian codice fiscale, Indian Aadhaar), the UK National Insurance number by format.
_ALONE, _END = r"(?<!\d[ -])\b", r"\b(?![ -]\d)"  # a whole number, not a slice of a longer digit group
_BUILTIN: tuple[tuple[str, str, Callable[[str], bool] | None], ...] = (
    ("api_key", r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_-]{2,16}-)?[A-Za-z0-9]{16,}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
                r"|\bxox[abpr]-[A-Za-z0-9-]{10,}\b|\bAIza[0-9A-Za-z_-]{35}\b", None),
    ("aws_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", None),
    ("password", r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|token)\s*[:=]\s*[\"']?[^\s\"',;]{4,}", None),
    ("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", None),
    ("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", iban.is_valid),
    ("card", r"\b\d(?:[ -]?\d){12,18}\b", lambda s: luhn.is_valid(re.sub(r"\D", "", s))),
    ("national_id", r"\b\d{3}-\d{2}-\d{4}\b", ssn.is_valid),
    ("national_id", rf"{_ALONE}\d{{3}}[ -]\d{{3}}[ -]\d{{3}}{_END}", sin.is_valid),
    ("national_id", rf"{_ALONE}\d{{2}} ?\d{{3}} ?\d{{3}} ?\d{{3}}{_END}", idnr.is_valid),
    ("national_id", rf"{_ALONE}[12] ?\d{{2}} ?\d{{2}} ?(?:\d{{2}}|2[AB]) ?\d{{3}} ?\d{{3}} ?\d{{2}}{_END}", nir.is_valid),
    ("national_id", r"\b\d{8}-?[A-Z]\b", dni.is_valid),
    ("national_id", r"\b[XYZ]-?\d{7}-?[A-Z]\b", nie.is_valid),
    ("national_id", r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b", codicefiscale.is_valid),
    ("national_id", r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", None),
    ("national_id", rf"{_ALONE}[2-9]\d{{3}} \d{{4}} \d{{4}}{_END}", aadhaar.is_valid),
)
def _compile(pattern: str, key: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{key}: {pattern!r} is not a valid regular expression ({err})") from None


PLACEHOLDERS = {"api_key": "[SECRET]", "aws_key": "[SECRET]", "password": "[SECRET]", "email": "[EMAIL]",
                "iban": "[IBAN]", "card": "[CARD_NUMBER]", "national_id": "[NATIONAL_ID]", "phone": "[PHONE]"}
KINDS = tuple(PLACEHOLDERS)


@dataclass(frozen=True)
class Scrubber:
    """Finds PII kinds in text; `extra` maps a kind name to a regular expression from config."""

    extra: Mapping[str, str] = field(default_factory=dict)
    phone_region: str = "US"
    allow: tuple[str, ...] = ()  # findings matching one of these are kept, e.g. a public help-desk address

    def __post_init__(self) -> None:
        compiled = [(k, re.compile(p), v) for k, p, v in _BUILTIN]
        compiled += [(name, _compile(pattern, f"dataset.pii_patterns.{name}"), None)
                     for name, pattern in self.extra.items()]
        object.__setattr__(self, "_patterns", compiled)
        object.__setattr__(self, "_allow", [_compile(p, f"dataset.pii_allow.{i}") for i, p in enumerate(self.allow)])

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping (start, end, kind) spans, earliest first."""
        spans: list[tuple[int, int, str]] = []
        for kind, pattern, valid in self._patterns:  # type: ignore[attr-defined]
            spans += [(m.start(), m.end(), kind) for m in pattern.finditer(text) if valid is None or valid(m.group())]
        for m in phonenumbers.PhoneNumberMatcher(text, self.phone_region):
            spans.append((m.start, m.end, "phone"))
        spans = [s for s in spans if not any(a.search(text[s[0]:s[1]]) for a in self._allow)]  # type: ignore[attr-defined]
        spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
        out: list[tuple[int, int, str]] = []
        for span in spans:
            if not out or span[0] >= out[-1][1]:
                out.append(span)
        return out

    def redact(self, text: str) -> tuple[str, Counter]:
        """The text with each finding replaced by its placeholder, and the count per kind."""
        found = self.find(text)
        counts: Counter = Counter(kind for _, _, kind in found)
        for start, end, kind in reversed(found):
            text = text[:start] + PLACEHOLDERS.get(kind, f"[{kind.upper()}]") + text[end:]
        return text, counts
