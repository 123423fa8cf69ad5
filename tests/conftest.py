import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The embedded SmolLM2 tokenizer, rebuilt from its GGUF (seconds, no model conversion)."""
    from harness.default_model import find_embedded_gguf
    from harness.gguf_tokenizer import write_bpe_tokenizer

    d = tmp_path_factory.mktemp("tokenizer")
    write_bpe_tokenizer(find_embedded_gguf(), d)
    return d


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tokenizer_dir) -> Path:
    from tests.tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama", tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory, tokenizer_dir) -> Path:
    from tests.tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen3", "qwen3", tokenizer_dir, seed=1)


@pytest.fixture(scope="session")
def tiny_awq(tmp_path_factory, tiny_qwen3) -> Path:
    """The tiny Qwen3 with every decoder linear replaced by random AWQ GEMM tensors (group 128)."""
    from tests.tiny_models import make_random_awq

    return make_random_awq(tiny_qwen3, tmp_path_factory.mktemp("tiny-awq"))
