"""Non-finite logits are counted once per scored position, never more positions than were scored."""
import numpy as np

from evaluators.window_scores import nonfinite_positions
from harness.variant_flags import nonfinite_flags


def test_a_position_whose_logits_and_log_prob_are_both_nan_counts_once():
    lse = np.array([1.0, np.nan, np.inf, 2.0, np.nan])
    nll = np.array([0.5, np.nan, np.nan, np.inf, np.nan])  # NaN logits make both NaN at positions 1, 2 and 4
    assert nonfinite_positions(nll, lse) == 4
    assert nonfinite_positions(nll) == 4
    assert nonfinite_positions(np.full(1020, np.nan), np.full(1020, np.nan)) == 1020  # not 2,040


def test_the_flag_says_how_many_of_the_scored_positions():
    class Cell:
        variant, runtime = "gguf-q4_k_m", "llama.cpp"
        result = {"nonfinite_positions": 1020, "scored_tokens": 1020}

    (flag,) = nonfinite_flags([Cell()])
    assert flag.level == "broken" and "at 1,020 of 1,020 scored positions" in flag.message
