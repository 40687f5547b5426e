"""The router: which of the four modes answers a question, and why.

The mode comes from, in order: the caller's explicit choice, the first of the
principal's groups that config maps to a mode, then `router.default_mode`. The
modes are a table, not a graph: each says whether to retrieve and whether the
adapter is on. `auto` decides per question from retrieval confidence.

Example:
    >>> choose_mode(None, Principal(groups=("support",)), RouterConfig(groups={"support": "combined"}))
    ('combined', 'group support')
"""

from __future__ import annotations

from framework.config import RouterConfig
from framework.records import MODES, Principal

# mode -> (retrieve, use adapter)
MODE_TABLE: dict[str, tuple[bool, bool]] = {
    "prompt_only": (False, False),
    "rag": (True, False),
    "finetuned": (False, True),
    "combined": (True, True),
}


class UnknownModeError(ValueError):
    pass


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UnknownModeError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    return mode


def choose_mode(explicit: str | None, principal: Principal, cfg: RouterConfig) -> tuple[str, str]:
    """Return (mode, reason)."""
    if explicit:
        return check_mode(explicit), "explicit"
    for group in principal.groups:
        if group in cfg.groups:
            return cfg.groups[group], f"group {group}"
    return cfg.default_mode, "router.default_mode"


def resolve_auto(top_score: float | None, has_adapter: bool, min_score: float,
                 label: str = "top retrieval score") -> tuple[str, str]:
    """auto: use the documents when retrieval is confident, the adapter's memory otherwise.

    `top_score` is the calibrated confidence when the index has a calibration (`label`
    says which), else the raw top cosine similarity."""
    confident = top_score is not None and top_score >= min_score
    score = "none" if top_score is None else f"{top_score:.3f}"
    if confident:
        return ("combined" if has_adapter else "rag"), f"auto: {label} {score} >= {min_score}"
    return ("finetuned" if has_adapter else "prompt_only"), f"auto: {label} {score} < {min_score}"
