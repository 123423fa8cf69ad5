"""Our AWQ GEMM reader gives exactly what AutoAWQ's own dequantize_gemm gives."""
import subprocess

import pytest
import torch

from evaluators.backends.awq_gemm import dequantize_gemm
from core.paths import venv_python

SCRIPT = """
import sys, torch
from awq.utils.packing_utils import dequantize_gemm
g = torch.Generator().manual_seed(0)
inf, outf, group = 256, 64, 64
qweight = torch.randint(-2**31, 2**31 - 1, (inf, outf // 8), generator=g, dtype=torch.int64).to(torch.int32)
qzeros = torch.randint(-2**31, 2**31 - 1, (inf // group, outf // 8), generator=g, dtype=torch.int64).to(torch.int32)
scales = (torch.rand(inf // group, outf, generator=g) * 0.02 + 0.001).half()
w = dequantize_gemm(qweight, qzeros, scales, 4, group)
torch.save({"qweight": qweight, "qzeros": qzeros, "scales": scales, "w": w, "group": group}, sys.argv[1])
"""


def test_matches_autoawq_dequantize_gemm(tmp_path):
    py = venv_python("autoawq")
    if not py.exists():
        pytest.fail("the AutoAWQ environment is missing: run `make setup`")
    f = tmp_path / "awq.pt"
    p = subprocess.run([str(py), "-c", SCRIPT, str(f)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    d = torch.load(f)
    ours = dequantize_gemm(d["qweight"], d["qzeros"], d["scales"], d["group"])
    assert ours.shape == (d["w"].shape[1], d["w"].shape[0])
    assert torch.equal(ours.t().half(), d["w"].half())


def test_unpack_order_on_a_known_word():
    from evaluators.backends.awq_gemm import unpack_int4

    # nibble i holds column AWQ_ORDER[i]: pack columns 0..7 with values 0..7
    order = (0, 2, 4, 6, 1, 3, 5, 7)
    word = sum(order[i] << (4 * i) for i in range(8))
    assert unpack_int4(torch.tensor([[word]], dtype=torch.int32)).tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]]
