"""Gate conditions: parsed by a small grammar (never eval), checked with margins, bad ones explained."""

import pytest

from framework.evaluation.gate import GateError, check_gates, parse_condition, parse_conditions
from framework.evaluation.results import EvaluationResult, ModeResult, PairedDifference
from framework.evaluation.stats import NA, Estimate

RESULT = EvaluationResult(
    results=(ModeResult(label="rag", mode="rag", metrics={"token_f1": Estimate(0.30, 0.25, 0.35, 40),
                                                           "groundedness": Estimate(0.85, 0.80, 0.90, 40)}),
             ModeResult(label="combined", mode="combined",
                        metrics={"token_f1": Estimate(0.36, 0.30, 0.42, 40), "groundedness": NA}),
             ModeResult(label="finetuned@v0003", mode="finetuned", refused="adapter t has no version v0003")),
    questions=40, baseline="rag",
    comparisons=(PairedDifference("combined", "rag", {"token_f1": Estimate(0.06, 0.01, 0.11, 40)}),))


def _check(condition):
    return check_gates(RESULT, [condition]).checks[0]


def test_conditions_pass_and_fail_with_their_margin():
    ok = _check("combined.token_f1 >= rag.token_f1")
    assert ok.passed and ok.margin == pytest.approx(0.06) and ok.left == 0.36 and ok.right == 0.30
    low = _check("combined.token_f1.low > rag.token_f1.high")  # 0.30 > 0.35: inside the noise
    assert not low.passed and low.margin == pytest.approx(-0.05) and "0.3000 is not > 0.3500 (left - right = -0.0500)" == low.reason
    assert _check("combined.token_f1.low > rag.token_f1.high - 0.06").passed  # with a tolerance
    assert _check("combined.token_f1.delta.low > 0").passed
    assert _check("rag.groundedness >= 0.8").passed and not _check("rag.groundedness.low > 0.8").passed
    assert _check("-1 + rag.token_f1 < 0").passed
    assert _check("rag.token_f1-0.3 == 0").passed  # '-' before a digit is a minus
    hyphen = parse_condition("finetuned@eval-hr@v0002.token_f1 >= rag.token_f1 - 0.02")
    assert [o.label for o in hyphen.operands] == ["finetuned@eval-hr@v0002", "rag"]


def test_what_cannot_be_checked_fails_and_says_why():
    na = _check("combined.groundedness >= 0.8")
    assert not na.passed and "n/a" in na.reason
    refused = _check("finetuned@v0003.token_f1 >= rag.token_f1")
    assert not refused.passed and "refused: adapter t has no version v0003" in refused.reason
    base = _check("rag.token_f1.delta >= 0")
    assert not base.passed and "baseline rag" in base.reason
    result = check_gates(RESULT, ["rag.token_f1 >= 0", "rag.token_f1 >= 0.5"])
    assert not result.passed and [c.condition for c in result.failures] == ["rag.token_f1 >= 0.5"]


@pytest.mark.parametrize("text, message", [
    ("rag.token_f1 >> 0.3", "unexpected '>' at column 15"),
    ("rag.token_f2 >= 0.3", "names no metric"),
    ("rag.token_f1.lo >= 0.3", "unknown suffix 'lo'"),
    ("rag.token_f1", "two sides and one comparison"),
    ("rag.token_f1 >= 0.3 >= 0.2", "unexpected '>=' at column 21"),
    ("rag.token_f1 >= 0.3 +", "ends where a number or a name is expected"),
    ("__import__('os').system('x') >= 1", "names no metric"),
    ("rag.token_f1 >= 0.3; 1", "unexpected ';'"),
])
def test_bad_conditions_are_clear_errors(text, message):
    with pytest.raises(GateError, match=message):
        parse_condition(text)


def test_unknown_rows_are_named_with_the_rows_there_are():
    with pytest.raises(GateError, match="no row 'combind' in this evaluation; rows: rag, combined"):
        parse_conditions(["combind.token_f1 >= 0"], labels=["rag", "combined"])
    with pytest.raises(GateError, match="no row 'auto'"):
        check_gates(RESULT, ["auto.token_f1 >= 0"])
