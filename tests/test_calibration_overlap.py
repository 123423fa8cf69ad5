"""Calibration text that overlaps the evaluation text is refused (harness/shared_inputs.calibration_overlap): a run of
13 words in common anywhere in a passage, as lm-eval's decontamination counts it. The check once read only the first
160 characters of a passage, so a test paragraph behind a prefix passed."""
from core.paths import CALIBRATION_TEXT, WIKITEXT_TEST
from harness.shared_inputs import _words, calibration_overlap, calibration_texts


def _paragraphs():
    return [line.strip() for line in WIKITEXT_TEST.read_text().splitlines() if len(line.strip()) > 400]


def test_a_test_paragraph_behind_a_prefix_is_an_overlap():
    para = _paragraphs()[3]
    ev = WIKITEXT_TEST.read_text()
    assert calibration_overlap(["Note: " + para], ev)
    middle = " ".join(_words(para)[20:33])  # 13 words from inside the paragraph, in a sentence of their own
    assert calibration_overlap([f"Someone wrote that {middle} and then went home."], ev)


def test_twelve_shared_words_or_the_shipped_calibration_are_no_overlap():
    ev = WIKITEXT_TEST.read_text()
    twelve = " ".join(_words(_paragraphs()[3])[20:32])
    assert not calibration_overlap([f"Someone wrote that {twelve} and then went home."], ev)
    assert not calibration_overlap(calibration_texts(CALIBRATION_TEXT), ev)
