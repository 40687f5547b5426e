"""The adapter registry: adapters/<name>/<version>/ with peft files and manifest.json.

The manifest records what the adapter learned from (dataset hash, document ids and
content hashes), who may use it (audience), the base model's fingerprint, the
hyperparameters and metrics. An adapter is only ever loaded on the base it was
trained on: a different base is refused.

Example:
    >>> reg = AdapterRegistry(Path(".ragtune/adapters"))    # doctest: +SKIP
    >>> reg.latest("default").version                       # doctest: +SKIP
    'v0002'
    >>> reg.promote("default", "v0001")                     # doctest: +SKIP
    >>> reg.resolve("default").version                      # doctest: +SKIP
    'v0001'

Go-live: a newly published version is not served until it is promoted (`ragtune adapters
promote`, or `ragtune finetune --promote`), so a run that trained badly never answers a
user by itself. `adapters.serve: latest` in config opts into serving each new version as
soon as it is published.

Version numbers are never reused: `registry.json` keeps the highest number ever published
(`last_version`), so after `ragtune adapters delete t v0003` the next run publishes v0004, not
another v0003 that a running server, a pinned config or an export would take for the deleted
weights. A workspace without that record (written before it, or with the file lost) numbers on
from its highest version folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Sequence

from framework.adapters.manifest import AdapterManifest
from framework.config import Config

ServeRule = Literal["promoted", "latest"]


class AdapterError(RuntimeError):
    """An adapter is missing or does not fit the base model."""


@dataclass(frozen=True)
class AdapterRef:
    name: str
    version: str
    path: Path
    manifest: AdapterManifest

    @property
    def key(self) -> str:
        """The version's name for people (`Answer.adapter`, logs): "support-v0003"."""
        return f"{self.name}-{self.version}"

    @property
    def load_key(self) -> str:
        """The name a generator loads these weights under: `key` plus a digest of the manifest's creation time
        and the weights file's identity, so weights replaced in the folder (by hand, or a deleted number
        published again by an older ragtune) are loaded afresh, never answered from memory."""
        weights = self.path / "adapter_model.safetensors"
        st = weights.stat() if weights.is_file() else None
        ident = f"{self.version}|{self.manifest.created_at}|{(st.st_ino, st.st_size, st.st_mtime_ns) if st else ''}"
        return f"{self.key}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"


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


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'support' -> ('support', None); 'support@v0003' -> ('support', 'v0003')."""
    name, _, version = spec.partition("@")
    if version and not re.fullmatch(r"v\d{4,}", version):
        raise AdapterError(f"adapter version {version!r} in {spec!r} must look like v0003")
    return name, version or None


class AdapterRegistry:
    """Versions of each named adapter, which one is promoted, and atomic publishing.

    `registry.json` beside the versions records the promoted version. The router serves
    a pinned version if config names one, else the promoted one (`adapters.serve: promoted`,
    the default) or the newest (`adapters.serve: latest`).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and self.versions(d.name)) \
            if self.root.is_dir() else []

    def versions(self, name: str) -> list[AdapterRef]:
        folder = self.root / name
        refs = []
        for d in sorted(folder.glob("v[0-9]*")) if folder.is_dir() else []:
            manifest = d / "manifest.json"
            if manifest.is_file():
                refs.append(AdapterRef(name, d.name, d, AdapterManifest.from_dict(json.loads(manifest.read_text()))))
        return refs

    def latest(self, name: str) -> AdapterRef | None:
        refs = self.versions(name)
        return refs[-1] if refs else None

    def get(self, name: str, version: str) -> AdapterRef:
        for ref in self.versions(name):
            if ref.version == version:
                return ref
        known = ", ".join(r.version for r in self.versions(name)) or "none"
        raise AdapterError(f"adapter {name!r} has no version {version!r} (versions: {known}); "
                           "see `ragtune adapters list`")

    def promoted(self, name: str) -> str | None:
        return self._state(name).get("promoted")

    def promote(self, name: str, version: str) -> AdapterRef:
        ref = self.get(name, version)
        self._write_state(name, {**self._state(name), "promoted": version,
                                 "promoted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        return ref

    def unpromote(self, name: str) -> None:
        """Forget the promoted version (nothing of `name` is served unless config pins one)."""
        self._write_state(name, {k: v for k, v in self._state(name).items() if k not in ("promoted", "promoted_at")})

    def delete(self, name: str, version: str, *, force: bool = False, pinned_by: Sequence[str] = ()) -> None:
        """Remove a version's folder; its number is never given to another version (see `next_version_dir`).
        `pinned_by`: what in the config pins this version (`config_pins`): refused unless `force`, since the
        next `ragtune serve` would refuse to start without it."""
        ref = self.get(name, version)
        if pinned_by and not force:
            raise AdapterError(f"{ref.key} is pinned by {'; '.join(pinned_by)}: the next `ragtune serve` would "
                               "refuse to start without it. Change the config to another version (or stop the "
                               "experiment) first, or delete it anyway with --force")
        state = {**self._state(name), "last_version": self._last_version(name)}
        if state.get("promoted") == version:
            if not force:
                raise AdapterError(f"{ref.key} is the promoted version that the router serves; promote another "
                                   "version first, or delete it anyway with --force")
            state = {k: v for k, v in state.items() if k not in ("promoted", "promoted_at")}
        self._write_state(name, state)  # the high-water mark first: a kill after it leaves a number skipped
        shutil.rmtree(ref.path)

    def resolve(self, spec: str, pinned: str | None = None, *, serve: ServeRule = "promoted") -> AdapterRef:
        """What the router serves for `spec`: a pinned version, else the promoted one (or, with
        `serve="latest"`, the newest). Raises AdapterError saying what to do when nothing is served."""
        name, version = parse_spec(spec)
        version = version or pinned
        if version:
            return self.get(name, version)
        if serve == "latest":
            return self.require(name)
        promoted = self.promoted(name)
        if promoted:
            return self.get(name, promoted)
        newest = self.require(name)
        raise AdapterError(
            f"adapter {name!r} has versions ({', '.join(r.version for r in self.versions(name))}) but none is "
            f"promoted, so none is served; check {newest.version} (`ragtune adapters show {name}@{newest.version}`) "
            f"then `ragtune adapters promote {name} {newest.version}`, or train with `ragtune finetune --promote`, "
            "or set adapters.serve: latest to serve each new version as soon as it is trained"
        )

    def served(self, spec: str, pinned: str | None = None, *, serve: ServeRule = "promoted") -> AdapterRef | None:
        """`resolve`, or None where nothing is served (what `ragtune adapters list` marks)."""
        try:
            return self.resolve(spec, pinned, serve=serve)
        except AdapterError:
            return None

    def next_version_dir(self, name: str) -> Path:
        """The folder of the next version: one past the highest number ever published (`registry.json`'s
        `last_version`) or found on disk, whichever is higher, so a deleted number is never reused."""
        last = self._last_version(name)
        return self.root / name / f"v{int(last[1:]) + 1 if last else 1:04d}"

    def _last_version(self, name: str) -> str | None:
        found = [int(m.group(1)) for d in (self.root / name).glob("v*") if (m := re.fullmatch(r"v(\d+)", d.name))]
        recorded = self._state(name).get("last_version")
        if isinstance(recorded, str) and (m := re.fullmatch(r"v(\d+)", recorded)):
            found.append(int(m.group(1)))
        return f"v{max(found):04d}" if found else None

    def staging_dir(self, name: str) -> Path:
        """Where a training run writes its adapter before it is published (invisible to readers)."""
        return self.root / name / ".incoming"

    def publish(self, name: str, staging: Path, manifest: AdapterManifest) -> AdapterRef:
        """Give the staged adapter the next version and its manifest, in one rename."""
        target = self.next_version_dir(name)
        manifest = dataclasses.replace(manifest, name=name, version=target.name)
        (staging / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False))
        staging.rename(target)
        self._write_state(name, {**self._state(name), "last_version": target.name})
        return AdapterRef(name, target.name, target, manifest)

    def require(self, name: str) -> AdapterRef:
        """The latest version of `name`, or an error that says how to train one."""
        ref = self.latest(name)
        if ref is None:
            raise AdapterError(
                f"no trained adapter named {name!r} in {self.root}; train one with `ragtune synth` then "
                "`ragtune finetune` (or choose mode prompt_only or rag)"
            )
        return ref

    def _state(self, name: str) -> dict:
        """registry.json: the promoted version and the highest version number ever published."""
        path = self.root / name / "registry.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write_state(self, name: str, state: dict) -> None:
        tmp = self.root / name / ".registry.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.root / name / "registry.json")


def config_pins(config: Config, name: str, version: str) -> list[str]:
    """Where `config` pins `name@version` (router.adapter, router.adapter_version, router.group_adapters, an
    enabled experiment's arm), each as its key path and what it is, for `delete` to name.

    Example:
        >>> cfg = Config.model_validate({"router": {"group_adapters": {"hr": "hr@v0002"}}})
        >>> config_pins(cfg, "hr", "v0002")
        ['router.group_adapters.hr (hr@v0002)']
    """
    r, pins = config.router, []
    spec = parse_spec(r.adapter)
    if spec[0] == name and (spec[1] or r.adapter_version) == version:
        pins.append(f"router.adapter ({r.adapter}{'' if spec[1] else f', router.adapter_version {version}'})")
    pins += [f"router.group_adapters.{g} ({s})" for g, s in r.group_adapters.items() if parse_spec(s) == (name, version)]
    pins += [f"experiment {e.name} arm {a.name} (experiments.{i}.arms.{j}.adapter {a.adapter})"
             for i, e in enumerate(config.experiments) if e.enabled
             for j, a in enumerate(e.arms) if a.adapter and parse_spec(a.adapter) == (name, version)]
    return pins


def check_base(ref: AdapterRef, base_dir: Path) -> None:
    """Refuse an adapter trained on other base weights: its deltas would be meaningless there."""
    expected = ref.manifest.base_fingerprint
    actual = base_fingerprint(base_dir)
    if expected != actual:
        raise AdapterError(
            f"adapter {ref.key} was trained on base model {ref.manifest.base_model!r} "
            f"(fingerprint {expected}), but generator.model is {str(base_dir)!r} (fingerprint {actual}); "
            "retrain the adapter on this base or set generator.model back"
        )
