import pytest

from quantizers.awq_groups import choose_group_size


def test_group_128_kept_when_it_divides():
    assert choose_group_size({"hidden_size": 2560, "num_attention_heads": 32, "head_dim": 128, "intermediate_size": 9728}, 128) == (128, None)


def test_smollm2_falls_back_to_64_and_says_why():
    g, note = choose_group_size({"hidden_size": 576, "num_attention_heads": 9, "head_dim": 64, "intermediate_size": 1536}, 128)
    assert g == 64
    assert "576" in note and "64" in note


def test_no_group_fits():
    with pytest.raises(ValueError):
        choose_group_size({"hidden_size": 100, "num_attention_heads": 4, "intermediate_size": 300}, 128)
