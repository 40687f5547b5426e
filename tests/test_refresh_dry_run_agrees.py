"""The refresh dry run plans what the run then trains (it planned 39 examples, the run trained 30).

The cause: the run counted a learned question as new when synthesis, redrawing its RAFT (`combined`) rows over
the grown set, gave it another row mode; the dry run counted the serving version's rows. Both now count with
one rule (framework.refresh.examples.example_counts) on the same notion of learned. The new examples of
documents not ingested yet can only be estimated before synthesis; the rest must match."""

from test_refresh import change_corpus, refresh_config, trained


def test_the_dry_run_and_the_run_agree_on_a_real_refresh(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model)
    project = trained(cfg)
    change_corpus(cfg)
    planned = project.refresh(dry_run=True).estimate
    ran = project.refresh()
    assert ran.outcome in ("promoted", "gate_failed"), ran.message
    done = ran.examples
    assert (planned["unchanged"], planned["replay"]) == (done["unchanged"], done["replay"])
    assert done["trained"] == done["new"] + done["replay"] and planned["trained"] == planned["new"] + planned["replay"]
    # New examples are estimated from the serving version's examples per chunk: within a tenth here.
    assert abs(planned["new"] - done["new"]) <= 0.1 * done["new"], (planned, done)
    manifest = project.adapters.get("t", ran.candidate).manifest
    assert manifest.metrics["train_examples"] == done["trained"]
