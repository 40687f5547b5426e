"""The A/B report's numbers: against values computed by hand on a small fixed log, and against scipy on a
simulated log where an effect and a sample-ratio mismatch were planted."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pytest
from scipy import stats

from framework.config import ExperimentConfig
from framework.experiments.assignment import arm_indexes, buckets
from framework.experiments.output import to_markdown, write_report
from framework.experiments.report import build_report
from framework.experiments.store import Exposure

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
CFG = ExperimentConfig.model_validate({"name": "greeting", "arms": [{"name": "control", "mode": "rag"},
                                                                     {"name": "tuned", "mode": "combined"}]})
# Table quantiles: t(0.975; 2 df), t(0.975; 3 df), z(0.975).
T2, T3, Z = 4.302653, 3.182446, 1.959964


def exposure(request_id: str, arm: str, unit: str, latency: float = 0.5) -> Exposure:
    return Exposure(request_id, "greeting", arm, unit, "rag", None, latency, 30, 8, T0)


def fixed_log():
    """control: 4 units, 5 requests (c1 asked twice); tuned: 6 units, one request each."""
    control = [exposure(r, "control", r[:2]) for r in ("c1a", "c1b", "c2", "c3", "c4")]
    tuned = [exposure(f"t{i}", "tuned", f"t{i}") for i in range(1, 7)]
    resolved = {"c1a": 1, "c1b": 0, "c2": 1, "c3": 1, "t1": 1, "t2": 1, "t3": 1, "t4": 1, "t5": 0, "t6": 1}
    rating = {"c1a": 3, "c2": 4, "c3": 5, "t1": 4, "t2": 5, "t3": 5, "t4": 4}
    outcomes = {**{(r, "resolved"): float(v) for r, v in resolved.items()},
                **{(r, "rating"): float(v) for r, v in rating.items()}}
    return control + tuned, outcomes


def test_the_fixed_log_matches_the_numbers_worked_out_by_hand():
    exposures, outcomes = fixed_log()
    report = build_report(CFG, exposures, outcomes)
    arms = {a.name: a for a in report.arms}
    assert (arms["control"].exposures, arms["control"].units, arms["tuned"].exposures, arms["tuned"].units) == (5, 4, 6, 6)
    metrics = {m.name: m for m in report.metrics}

    rating = metrics["rating"]  # control 3, 4, 5: mean 4, s = 1; tuned 4, 5, 5, 4: mean 4.5, s^2 = 1/3
    assert rating.kind == "mean" and rating.source == "outcome"
    c, t = rating.arms["control"], rating.arms["tuned"]
    assert (c.value, c.n, t.value, t.n) == (4.0, 3, 4.5, 4)
    assert c.low == pytest.approx(4 - T2 / math.sqrt(3), abs=1e-5) and c.high == pytest.approx(6.484138, abs=1e-5)
    assert t.low == pytest.approx(4.5 - T3 * math.sqrt(1 / 3) / 2, abs=1e-5)
    # Welch: se^2 = 1/3 + (1/3)/4 = 5/12; df = (5/12)^2 / ((1/3)^2/2 + (1/12)^2/3) = 3 exactly, so the t(3)
    # distribution function has a closed form: F(x) = 1/2 + (x/sqrt(3)/(1 + x^2/3) + atan(x/sqrt(3))) / pi.
    se = math.sqrt(5 / 12)
    x = 0.5 / se
    cdf = 0.5 + (x / math.sqrt(3) / (1 + x * x / 3) + math.atan(x / math.sqrt(3))) / math.pi
    diff = rating.vs_control["tuned"]
    assert diff.test == "welch" and diff.value == pytest.approx(0.5)
    assert diff.p_value == pytest.approx(2 * (1 - cdf), abs=1e-6) and diff.p_value == pytest.approx(0.495025, abs=1e-5)
    assert (diff.low, diff.high) == (pytest.approx(0.5 - T3 * se, abs=1e-5), pytest.approx(0.5 + T3 * se, abs=1e-5))

    resolved = metrics["resolved"]  # control 3 of 4, tuned 5 of 6: a rate
    assert resolved.kind == "rate" and resolved.coverage == {"control": 0.8, "tuned": 1.0}
    c = resolved.arms["control"]  # Wilson: (p + z^2/2n) / (1 + z^2/n) +- z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    centre, half = (0.75 + Z * Z / 8) / (1 + Z * Z / 4), Z * math.sqrt(0.75 * 0.25 / 4 + Z * Z / 64) / (1 + Z * Z / 4)
    assert (c.value, c.low, c.high) == (0.75, pytest.approx(centre - half, abs=1e-5), pytest.approx(centre + half, abs=1e-5))
    assert (c.low, c.high) == (pytest.approx(0.300642, abs=1e-5), pytest.approx(0.954413, abs=1e-5))
    # two-proportion z: pooled p = 8/10; z = (5/6 - 3/4) / sqrt(0.8 * 0.2 * (1/4 + 1/6)); p = erfc(|z| / sqrt 2)
    z = (5 / 6 - 3 / 4) / math.sqrt(0.8 * 0.2 * (1 / 4 + 1 / 6))
    half = Z * math.sqrt(0.75 * 0.25 / 4 + (5 / 6) * (1 / 6) / 6)
    diff = resolved.vs_control["tuned"]
    assert diff.test == "two_proportion" and diff.value == pytest.approx(1 / 12)
    assert diff.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), abs=1e-6)
    assert diff.p_value == pytest.approx(0.746886, abs=1e-5)
    assert (diff.low, diff.high) == (pytest.approx(1 / 12 - half, abs=1e-5), pytest.approx(1 / 12 + half, abs=1e-5))

    # sample ratio: 4 and 6 units against 5 and 5 expected: chi2 = 1/5 + 1/5 = 0.4; 1 df: p = erfc(sqrt(0.2))
    assert report.srm.chi2 == pytest.approx(0.4) and report.srm.p_value == pytest.approx(math.erfc(math.sqrt(0.2)))
    assert not report.srm.flagged and report.crossover_units == 0
    assert any("units asked more than once (arms control)" in n for n in report.notes)
    latency = metrics["latency_s"]
    assert latency.source == "exposure" and latency.arms["tuned"].n == 6


def test_the_report_files_say_the_same(tmp_path):
    exposures, outcomes = fixed_log()
    report = build_report(CFG, exposures, outcomes)
    paths = write_report(report, tmp_path / "r")
    assert [p.name for p in paths[:2]] == ["report.md", "report.json"]
    assert {p.name for p in paths[2:]} == {"rating.png", "resolved.png", "latency_s.png", "prompt_tokens.png",
                                           "completion_tokens.png"}
    for p in paths[2:]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    body = json.loads((tmp_path / "r" / "report.json").read_text())
    rating = next(m for m in body["metrics"] if m["name"] == "rating")
    assert rating["vs_control"]["tuned"]["p_value"] == pytest.approx(0.495025, abs=1e-5)
    assert body["srm"]["flagged"] is False and body["charts"]["rating"] == "rating.png"
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| tuned | 4.500 [3.581, 5.419] (n=4) | 67% | +0.500 [-1.554, 2.554], p=0.495 |" in md
    assert "chi-square 0.400, p = 0.527: fits the weights" in md and "![rating](rating.png)" in md
    assert to_markdown(report) in md


def simulated(n_units: int, control_share: float | None, effect: float, seed: int = 7):
    """One request per unit; arms by the real hash (control_share None) or drawn with a planted imbalance;
    `resolved` at 50% in control and 50% + effect in tuned; `rating` ~ N(3.5 (+ 4 effect in tuned), 1)."""
    rng = np.random.default_rng(seed)
    units = [f"u{i}" for i in range(n_units)]
    tuned = (rng.random(n_units) >= control_share) if control_share is not None else \
        arm_indexes([1, 1], buckets("sim", units)) == 1
    exposures = [exposure(u, "tuned" if t else "control", u, latency=float(rng.gamma(4, 0.1 + 0.02 * t)))
                 for u, t in zip(units, tuned)]
    resolved = rng.random(n_units) < 0.5 + effect * tuned
    rating = rng.normal(3.5 + 4 * effect * tuned, 1.0)
    outcomes = {**{(u, "resolved"): float(r) for u, r in zip(units, resolved)},
                **{(u, "rating"): float(r) for u, r in zip(units, rating)}}
    return build_report(CFG, exposures, outcomes), tuned, resolved, rating


def test_a_planted_effect_is_detected_with_scipy_s_numbers():
    report, tuned, resolved, rating = simulated(4000, None, effect=0.06)
    metrics = {m.name: m for m in report.metrics}
    welch = stats.ttest_ind(rating[tuned], rating[~tuned], equal_var=False)
    diff = metrics["rating"].vs_control["tuned"]
    assert diff.p_value == pytest.approx(welch.pvalue, rel=1e-9) and diff.p_value < 1e-3
    ci = welch.confidence_interval(0.95)
    assert (diff.low, diff.high) == (pytest.approx(ci.low), pytest.approx(ci.high)) and diff.low > 0
    table = [[resolved[tuned].sum(), (~resolved[tuned]).sum()], [resolved[~tuned].sum(), (~resolved[~tuned]).sum()]]
    chi2 = stats.chi2_contingency(table, correction=False)  # the two-proportion z-test, squared
    rate = metrics["resolved"].vs_control["tuned"]
    assert rate.p_value == pytest.approx(chi2.pvalue, rel=1e-9) and rate.p_value < 0.01 and rate.low > 0
    assert rate.value == pytest.approx(resolved[tuned].mean() - resolved[~tuned].mean())
    latency = metrics["latency_s"].vs_control["tuned"]  # the planted 20% slower tuned arm shows as a guardrail
    assert latency.value > 0 and latency.p_value < 1e-3
    assert not report.srm.flagged and report.srm.p_value > 0.001  # the hash split 4,000 units evenly enough


def test_no_effect_is_not_called_one():
    report, *_ = simulated(4000, None, effect=0.0, seed=3)
    assert all(d.p_value > 0.05 for m in report.metrics if m.source == "outcome" for d in m.vs_control.values())


def test_a_planted_45_55_imbalance_on_a_50_50_experiment_is_flagged():
    report, tuned, *_ = simulated(4000, 0.45, effect=0.0)
    counts = [int((~tuned).sum()), int(tuned.sum())]
    expected = stats.chisquare(counts, f_exp=[2000, 2000])
    assert report.srm.observed == {"control": counts[0], "tuned": counts[1]}
    assert report.srm.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert report.srm.chi2 == pytest.approx(expected.statistic)
    assert report.srm.flagged and report.srm.p_value < 0.001
    assert report.notes[0].startswith("SAMPLE RATIO MISMATCH") and "**SAMPLE RATIO MISMATCH" in to_markdown(report)


def test_crossovers_and_arms_no_longer_configured_are_reported():
    exposures = [exposure("a", "control", "u1"), exposure("b", "tuned", "u1"), exposure("c", "old", "u2")]
    report = build_report(CFG, exposures, {})
    assert report.crossover_units == 1 and [a.name for a in report.arms] == ["control", "tuned", "old"]
    assert report.arms[2].mode is None and set(report.srm.observed) == {"control", "tuned"}
    assert any("no longer configured" in n for n in report.notes) and any("more than one arm" in n for n in report.notes)
    assert "No outcome recorded yet" in to_markdown(report)


def test_per_unit_takes_one_observation_per_user():
    exposures, outcomes = fixed_log()  # c1 asked twice: resolved 1 then 0, a rating only on the first
    report = build_report(CFG, exposures, outcomes, per_unit=True)
    metrics = {m.name: m for m in report.metrics}
    resolved = metrics["resolved"]  # control units: c1 0.5, c2 1, c3 1 (c4 gave none); tuned 1,1,1,1,0,1
    assert resolved.kind == "mean" and resolved.arms["control"].n == 3
    assert resolved.arms["control"].value == pytest.approx(2.5 / 3) and resolved.coverage["control"] == 0.75
    assert resolved.vs_control["tuned"].test == "welch"
    assert metrics["latency_s"].arms["control"].n == 4 and report.to_dict()["observation"] == "unit"
    assert not any("more than once" in n for n in report.notes)


def test_ab_report_exits_5_on_a_sample_ratio_mismatch_and_names_it(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from framework.cli.main import app
    from framework.experiments.store import EXPOSURES, ExperimentStore

    url = f"sqlite:///{tmp_path / 'ab.sqlite'}"
    config = tmp_path / "ragtune.yaml"
    config.write_text(yaml.safe_dump({"workspace": str(tmp_path / "ws"), "experiments_store": url,
                                      "experiments": [CFG.model_dump(mode="json")]}))
    store = ExperimentStore(url)
    with store.engine.begin() as conn:  # 2,000 units, 45% control and 55% tuned, in one transaction
        conn.execute(EXPOSURES.insert(), [exposure(f"r{i}", "control" if i % 20 < 9 else "tuned", f"u{i}").__dict__
                                          for i in range(2000)])
    store.close()
    result = CliRunner().invoke(app, ["ab", "report", "greeting", "-c", str(config)])
    assert result.exit_code == 6 and "SAMPLE RATIO MISMATCH" in result.output
    assert "sample ratio mismatch: p = " in result.output
    written = list((tmp_path / "ws" / "reports" / "ab" / "greeting").glob("*/report.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["srm"]["flagged"] is True
    unknown = CliRunner().invoke(app, ["ab", "report", "nope", "-c", str(config)])
    assert unknown.exit_code == 2 and "no experiment named 'nope' in `experiments:` of the config; configured: greeting" \
        in unknown.output
    listed = CliRunner().invoke(app, ["ab", "list", "-c", str(config), "--json"])
    assert json.loads(listed.output)[0]["exposures"] == 2000
