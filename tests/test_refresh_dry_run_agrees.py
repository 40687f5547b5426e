"""The refresh dry run plans what the run then trains (it planned 39 examples, the run trained 30).

The cause: the run counted a learned question as new when synthesis, redrawing its RAFT (`combined`) rows over
the grown set, gave it another row mode; the dry run counted the serving version's rows. Both now count with
one rule (framework.refresh.examples.example_counts) on the same notion of learned. The new examples of
documents not ingested yet can only be estimated before synthesis, and synthesis over the grown set may re-split
or deduplicate a few unchanged rows: the counts agree within a few percent, not exactly."""

import pytest
from test_refresh import change_corpus, refresh_config, trained


def test_the_dry_run_and_the_run_agree_on_a_real_refresh(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model)
    project = trained(cfg)
    change_corpus(cfg)
    planned = project.refresh(dry_run=True).estimate
    ran = project.refresh()
    assert ran.outcome in ("promoted", "gate_failed"), ran.message
    done = ran.examples
    # Unchanged examples: the serving version's rows of unchanged chunks. Synthesis over the grown set can still
    # move a few of them to the eval split or drop one as a duplicate of a new row, which a dry run cannot see
    # without synthesizing: within 5% (the trial's gap was 30%: 39 planned, 30 trained).
    assert abs(planned["unchanged"] - done["unchanged"]) <= 0.05 * done["unchanged"], (planned, done)
    assert abs(planned["replay"] - done["replay"]) <= max(1, 0.05 * done["replay"]), (planned, done)
    assert done["trained"] == done["new"] + done["replay"] and planned["trained"] == planned["new"] + planned["replay"]
    manifest = project.adapters.get("t", ran.candidate).manifest
    assert manifest.metrics["train_examples"] == done["trained"]


@pytest.mark.xfail(strict=True, reason="new examples are estimated from the serving version's examples per chunk; "
                   "since synthesis asks each fact in several phrasings, rows per chunk vary with the chunk's facts "
                   "(planned 39, made 24 here): the dry run would have to run the extractive generator in memory")
def test_the_dry_run_estimates_the_new_examples_within_a_tenth(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model)
    project = trained(cfg)
    change_corpus(cfg)
    planned = project.refresh(dry_run=True).estimate
    done = project.refresh().examples
    assert abs(planned["new"] - done["new"]) <= 0.1 * done["new"], (planned, done)
