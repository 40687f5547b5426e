"""The adapter registry: adapters/<name>/<version>/ with peft files and manifest.json.

The manifest records what the adapter learned from (dataset hash, document ids and
content hashes), who may use it (audience), the base model's fingerprint, the
hyperparameters and metrics. An adapter is only ever loaded on the base it was
trained on: a different base is refused.

Example:
    >>> reg = AdapterRegistry(Path(".ragtune/adapters"))    # doctest: +SKIP
    >>> reg.latest("default").version                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path


class AdapterError(RuntimeError):
    """An adapter is missing or does not fit the base model."""


@dataclass(frozen=True)
class AdapterRef:
    name: str
    version: str
    path: Path
    manifest: dict

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def base_fingerprint(model_dir: Path) -> str:
    """Hash of the base model's config and weight headers: cheap, and changes with the weights' layout."""
    h = hashlib.sha256()
    model_dir = Path(model_dir)
    h.update((model_dir / "config.json").read_bytes() if (model_dir / "config.json").is_file() else b"")
    for f in sorted(model_dir.glob("*.safetensors")):
        with open(f, "rb") as fh:
            head = fh.read(8)
            h.update(head + fh.read(int.from_bytes(head, "little")))
            fh.seek(max(0, f.stat().st_size - 2**20))
            h.update(fh.read())
    return h.hexdigest()[:16]


class AdapterRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self, name: str) -> list[AdapterRef]:
        folder = self.root / name
        refs = []
        for d in sorted(folder.glob("v[0-9]*")) if folder.is_dir() else []:
            manifest = d / "manifest.json"
            if manifest.is_file():
                refs.append(AdapterRef(name, d.name, d, json.loads(manifest.read_text())))
        return refs

    def latest(self, name: str) -> AdapterRef | None:
        refs = self.versions(name)
        return refs[-1] if refs else None

    def next_version_dir(self, name: str) -> Path:
        existing = [int(m.group(1)) for d in (self.root / name).glob("v*") if (m := re.fullmatch(r"v(\d+)", d.name))]
        return self.root / name / f"v{max(existing, default=0) + 1:04d}"

    def require(self, name: str) -> AdapterRef:
        """The latest version of `name`, or an error that says how to train one."""
        ref = self.latest(name)
        if ref is None:
            raise AdapterError(
                f"no trained adapter named {name!r} in {self.root}; train one with `ragtune synth` then "
                "`ragtune finetune` (or choose mode prompt_only or rag)"
            )
        return ref


def check_base(ref: AdapterRef, base_dir: Path) -> None:
    """Refuse an adapter trained on other base weights: its deltas would be meaningless there."""
    expected = ref.manifest.get("base_fingerprint")
    actual = base_fingerprint(base_dir)
    if expected != actual:
        raise AdapterError(
            f"adapter {ref.key} was trained on base model {ref.manifest.get('base_model')!r} "
            f"(fingerprint {expected}), but generator.model is {str(base_dir)!r} (fingerprint {actual}); "
            "retrain the adapter on this base or set generator.model back"
        )
