from pathlib import Path

import pytest
import yaml

from connectors import source_types
from framework import config
from framework.config import ConfigError


def load_config(path, overrides=()):
    return config.load_config(path, overrides, source_types=source_types())


def load_config_dict(data, overrides=()):
    return config.load_config_dict(data, overrides, source_types=source_types())

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("framework/**/*.yaml"), *ROOT.glob("recipes/**/*.yaml")])
SHIPPED = [p for p in SHIPPED if "accelerate" not in p.parts]  # launcher configs: tests/test_distributed.py


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_every_shipped_yaml_validates(path, monkeypatch):
    monkeypatch.setenv("RAGTUNE_DOCS", "/tmp")
    cfg = load_config(path)
    assert cfg.router.default_mode in ("prompt_only", "rag", "finetuned", "combined", "auto")


def test_shipped_yaml_found():
    assert len(SHIPPED) >= 3


def test_all_errors_reported_at_once_with_key_paths():
    with pytest.raises(ConfigError) as exc:
        load_config_dict({
            "indx": {},
            "router": {"default_mode": "ragg"},
            "sources": [{"name": "a", "type": "files", "path": ".", "publik": True}],
            "finetune": {"rank": 0},
        })
    msg = str(exc.value)
    assert "indx: unknown key" in msg
    assert "sources.0.files.publik: unknown key" in msg or "sources.0.publik" in msg
    assert "router.default_mode" in msg and "'combined'" in msg
    assert "finetune.rank" in msg


def test_serve_token_groups_are_checked_at_load_with_key_paths():
    # A bad group used to load and only fail when `ragtune serve` built the token's Principal.
    token = {"user": "ana", "token_env": "TOK_ANA"}
    with pytest.raises(ConfigError) as exc:
        load_config_dict({"serve": {"tokens": [{**token, "groups": ["hr"]}, {**token, "groups": ["ok", "__nobody__"]},
                                               {**token, "groups": [" hr"]}]}})
    msg = str(exc.value)
    assert "serve.tokens.1.groups.1: Value error, group '__nobody__' is not a valid group name" in msg
    assert "serve.tokens.2.groups.0" in msg and "serve.tokens.0" not in msg
    ok = load_config_dict({"serve": {"tokens": [{**token, "groups": ["hr", "slack:general"]}]}})
    assert ok.serve.tokens[0].groups == ["hr", "slack:general"]


def test_unknown_source_type_lists_allowed():
    with pytest.raises(ConfigError, match="unknown source type 'wiki'; allowed: 'files'"):
        load_config_dict({"sources": [{"name": "a", "type": "wiki"}]})


def test_overrides_set_nested_and_list_keys():
    cfg = load_config_dict({"sources": [{"name": "a", "type": "files", "path": "x"}]},
                           ["router.default_mode=combined", "sources.0.public=true", "index.top_k=5"])
    assert cfg.router.default_mode == "combined"
    assert cfg.sources[0].public is True
    assert cfg.index.top_k == 5


def test_override_of_misspelled_key_fails_with_path():
    with pytest.raises(ConfigError, match="router.defualt_mode: unknown key"):
        load_config_dict({}, ["router.defualt_mode=rag"])


def test_malformed_override_is_explained():
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config_dict({}, ["router.default_mode"])


def test_env_interpolation(monkeypatch):
    monkeypatch.setenv("DOCS_DIR", "/srv/docs")
    cfg = load_config_dict({"sources": [{"name": "a", "type": "files", "path": "${DOCS_DIR}/wiki"}],
                            "index": {"url": "${CHROMA_URL:-http://127.0.0.1:8000}"}})
    assert cfg.sources[0].path == "/srv/docs/wiki"
    assert cfg.index.url == "http://127.0.0.1:8000"


def test_missing_env_var_names_key(monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match=r"index.url: environment variable NOPE_NOT_SET is not set"):
        load_config_dict({"index": {"url": "${NOPE_NOT_SET}"}})


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "conf").mkdir()
    f = tmp_path / "conf" / "ragtune.yaml"
    f.write_text(yaml.safe_dump({"workspace": "ws", "sources": [{"name": "a", "type": "files", "path": "docs"}]}))
    cfg = load_config(f)
    assert Path(cfg.workspace) == tmp_path / "conf" / "ws"
    assert Path(cfg.sources[0].path) == tmp_path / "conf" / "docs"


def test_duplicate_source_names_refused():
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config_dict({"sources": [{"name": "a", "type": "files", "path": "x"},
                                      {"name": "a", "type": "files", "path": "y"}]})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="ragtune init"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("router: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_override_with_invalid_yaml_value_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_dict({}, ["index.top_k=["])
