"""Assignment: the documented hash, uniform over 100,000 ids, sticky across processes, weight changes that
move only the units they must, and the running/audience rules; the experiments config's errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest

from framework.config import ConfigError, ExperimentConfig
from framework.experiments.assignment import BUCKETS, arm_indexes, assign, assign_unit, boundaries, bucket, buckets
from framework.project import load_config_dict
from framework.records import Principal

IDS = [f"user-{i}" for i in range(100_000)]
NOW = datetime(2026, 12, 10, tzinfo=timezone.utc)


def experiment(**kw) -> ExperimentConfig:
    arms = kw.pop("arms", [{"name": "control", "mode": "rag"}, {"name": "tuned", "mode": "combined"}])
    return ExperimentConfig.model_validate({"name": "greeting", "salt": "s1", "arms": arms, **kw})


def test_the_bucket_is_the_documented_sha256_formula():
    for unit in ("ana", "bo@corp.com", "Zoë", ""):
        digest = hashlib.sha256(f"s1:{unit}".encode("utf-8")).digest()
        assert bucket("s1", unit) == int.from_bytes(digest[:8], "big") % 10_000
    assert bucket("s1", "ana") != bucket("s2", "ana") or bucket("s1", "bo") != bucket("s2", "bo")
    assert list(buckets("s1", ["ana", "bo"])) == [bucket("s1", "ana"), bucket("s1", "bo")]


@pytest.mark.parametrize("weights", [[1, 1], [50, 30, 20], [0.9, 0.1], [1, 2, 3, 4]])
def test_over_100000_ids_every_arm_is_within_half_a_point_of_its_weight(weights):
    arms = arm_indexes(weights, buckets("s1", IDS))
    shares = np.bincount(arms, minlength=len(weights)) / len(IDS)
    expected = np.asarray(weights) / sum(weights)
    assert np.abs(shares - expected).max() < 0.005, (shares, expected)
    bucket_shares = np.diff([0, *boundaries(weights)]) / BUCKETS  # the buckets themselves are split exactly
    assert np.abs(bucket_shares - expected).max() <= 1 / BUCKETS


STICKY = """
import json, sys
from framework.experiments.assignment import assign_unit
from framework.config import ExperimentConfig
cfg = ExperimentConfig.model_validate(json.loads(sys.argv[1]))
print(json.dumps([assign_unit(cfg, f"user-{i}").arm for i in range(20000)]))
"""


def test_assignment_is_identical_in_two_separate_processes():
    cfg = experiment(arms=[{"name": "a", "mode": "rag", "weight": 2}, {"name": "b", "mode": "prompt_only"},
                           {"name": "c", "mode": "finetuned"}]).model_dump(mode="json")
    runs = []
    for seed in ("1", "2"):  # different hash seeds: Python's own hash() would differ between them
        done = subprocess.run([sys.executable, "-c", STICKY, json.dumps(cfg)], capture_output=True, text=True,
                              env={"PYTHONHASHSEED": seed, "PYTHONPATH": "."}, check=True)
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1] and len(set(runs[0])) == 3
    here = [assign_unit(ExperimentConfig.model_validate(cfg), f"user-{i}").arm for i in range(20000)]
    assert here == runs[0]


def test_50_50_to_60_40_moves_only_the_tenth_it_must_and_only_into_the_grown_arm():
    b = buckets("s1", IDS)
    before, after = arm_indexes([50, 50], b), arm_indexes([60, 40], b)
    moved = before != after
    assert 0.09 < moved.mean() <= 0.10 + 0.005
    assert set(after[moved]) == {0} and set(before[moved]) == {1}


def test_an_arm_keeps_its_units_while_its_weight_does_not_shrink():
    b = buckets("s1", IDS[:20000])
    before, after = arm_indexes([10, 90], b), arm_indexes([50, 50], b)  # the ramp of a treatment listed first
    assert (after[before == 0] == 0).all()


def test_running_dates_audience_and_disabling_decide_who_is_assigned():
    ana = Principal(user="ana", groups=("support",))
    live = experiment()
    got, note = assign([live], principal=ana, now=NOW)
    assert got == assign_unit(live, "ana") and note is None and got.mode in ("rag", "combined")
    cases = {"disabled": experiment(enabled=False),
             "starts 2027-01-01T00:00:00+00:00": experiment(start="2027-01-01"),
             "ended 2026-12-01T00:00:00+00:00": experiment(start="2026-11-01", end="2026-12-01"),
             "outside its audience (legal)": experiment(audience=["legal"])}
    for why, cfg in cases.items():
        assert assign([cfg], principal=ana, now=NOW) == (None, None)  # normal routing, nothing to say
        none, note = assign([cfg], principal=ana, now=NOW, requested="greeting")
        assert none is None and why in note
    assert assign([experiment(audience=["support"])], principal=ana, now=NOW)[0] is not None
    assert assign([live], principal=Principal(), now=NOW)[0] is None  # anonymous is not a unit
    end_user = experiment(unit="end_user")
    assert assign([end_user], principal=ana, now=NOW, end_user="zed")[0].unit_id == "zed"
    with pytest.raises(KeyError, match="no experiment named 'nope'; configured: greeting"):
        assign([live], principal=ana, now=NOW, requested="nope")


def test_the_first_running_experiment_whose_audience_holds_the_caller_applies():
    legal = experiment(name="legal-only", audience=["legal"])
    everyone = experiment(name="everyone", salt="s2")
    got, _ = assign([legal, everyone], principal=Principal(user="ana", groups=("support",)), now=NOW)
    assert got.experiment == "everyone"


def _errors(experiments, **top) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_dict({"experiments": experiments, **top})
    return str(info.value)


def test_config_errors_name_the_key_and_the_bad_value_all_at_once():
    text = _errors([
        {"name": "a", "arms": [{"name": "x", "mode": "ragg", "weight": 0}, {"name": "y", "mode": "rag",
                                                                            "adapter": "Bad Name!"}]},
        {"name": "rag", "arms": [{"name": "x", "mode": "rag"}, {"name": "y", "mode": "rag"}]},
        {"name": "b", "arms": [{"name": "x", "mode": "rag", "top_k": 2, "wieght": 2}]},
    ], experiments_store="not a url")
    assert "experiments.0.arms.0.mode: Value error, unknown mode 'ragg'; allowed: prompt_only, rag" in text
    assert "experiments.0.arms.0.weight: Input should be greater than 0" in text
    assert "experiments.0.arms.1.adapter: Value error, adapter 'Bad Name!' is not an adapter name" in text
    assert "experiments.1.name: Value error, 'rag' is already a model name" in text
    assert "experiments.2.arms.0.wieght: unknown key" in text
    assert "experiments_store: Value error, 'not a url' is not a database URL; write e.g. postgresql://" in text
    one_arm = [{"name": "b", "arms": [{"name": "x", "mode": "rag"}]}]
    assert "experiments.0.arms: List should have at least 2 items" in _errors(one_arm)


@pytest.mark.parametrize("experiment_, says", [
    ({"arms": [{"name": "x", "mode": "rag"}, {"name": "x", "mode": "combined"}]}, "arm names must be unique; repeated: x"),
    ({"control": "z"}, "control 'z' is not an arm; arms: control, tuned"),
    ({"start": "2026-12-02", "end": "2026-12-01"}, "end 2026-12-01T00:00:00+00:00 is not after start"),
    ({"arms": [{"name": "x", "mode": "rag", "weight": 1}, {"name": "y", "mode": "rag", "weight": 1e6}]},
     "arms x weigh under 1/10,000 of the total"),
    ({"arms": [{"name": "x", "mode": "rag", "adapter": "t"}, {"name": "y", "mode": "rag"}]},
     "adapter applies to finetuned, combined and auto; mode rag uses none"),
    ({"arms": [{"name": "x", "mode": "finetuned", "top_k": 3}, {"name": "y", "mode": "rag"}]},
     "top_k applies to the modes that retrieve; mode finetuned does not"),
    ({"arms": [{"name": "x", "mode": "rag", "prompt": "concize"}, {"name": "y", "mode": "rag"}]},
     "unknown prompt variant 'concize'; named variants for this mode: default, concise, cite"),
    ({"arms": [{"name": "x", "mode": "rag", "prompt": "Q: {question}"}, {"name": "y", "mode": "rag"}]},
     "the prompt template needs {context}"),
    ({"arms": [{"name": "x", "mode": "rag", "prompt": "{context} {question.__class__}"}, {"name": "y", "mode": "rag"}]},
     "placeholder {question.__class__} is not allowed; use only {context}, {question}"),
    ({"arms": [{"name": "x", "mode": "prompt_only", "prompt": "{question} {context}"}, {"name": "y", "mode": "rag"}]},
     "placeholder {context} is not allowed; use only {question}"),
    ({"arms": [{"name": "x", "mode": "rag", "prompt": "{context} {question!r}"}, {"name": "y", "mode": "rag"}]},
     "placeholder {question!r} is not allowed"),
    ({"arms": [{"name": "x", "mode": "rag", "prompt": "{context} {question} }"}, {"name": "y", "mode": "rag"}]},
     "the prompt template does not parse"),
    ({"arms": [{"name": "x", "mode": "auto", "prompt": "concise"}, {"name": "y", "mode": "rag"}]},
     "auto picks its mode per question; give this arm a fixed mode"),
])
def test_experiment_rules_say_what_is_wrong(experiment_, says):
    base = {"name": "greeting", "arms": [{"name": "control", "mode": "rag"}, {"name": "tuned", "mode": "combined"}]}
    assert says in _errors([{**base, **experiment_}])


def test_experiment_names_are_unique_and_a_valid_experiment_loads():
    arms = [{"name": "a", "mode": "rag"}, {"name": "b", "mode": "combined", "adapter": "support@v0003", "top_k": 2,
                                           "prompt": "Documents:\n{context}\n\nAsk: {question}"}]
    assert "experiment names must be unique" in _errors([{"name": "x", "arms": arms}, {"name": "x", "arms": arms}])
    cfg = load_config_dict({"experiments": [{"name": "x", "arms": arms, "start": "2026-12-01T09:00:00+01:00"}]})
    e = cfg.experiments[0]
    assert e.control_arm == "a" and e.hash_salt == "x" and e.start == datetime(2026, 12, 1, 8, tzinfo=timezone.utc)


def test_the_guide_s_experiment_validates_and_its_assign_example_holds():
    from pathlib import Path

    import yaml

    guide = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "ab-modes.md").read_text()
    blocks = [b.split("```", 1)[0] for b in guide.split("```yaml\n")[1:]]
    experiments = [yaml.safe_load(b) for b in blocks if b.startswith("experiments:")]
    assert experiments
    cfg = load_config_dict(experiments[0]).experiments[0]
    assert "ana: bucket 860 of 10000 -> arm control (rag)" in guide
    assert assign_unit(cfg, "ana").bucket == 860 and assign_unit(cfg, "ana").arm == "control"
    variants = next(yaml.safe_load(b) for b in blocks if b.startswith("arms:"))
    load_config_dict({"experiments": [{"name": "prompts", **variants}]})
