"""quantizers/awq_fast_clip.py picks the clipping values AutoAWQ's own search picks (run in the AutoAWQ
environment), whatever device and dtype the cached input features come in."""
import subprocess

import pytest

from core.paths import REPO_ROOT, venv_python

SCRIPT = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from awq.quantize.quantizer import AwqQuantizer
from awq_fast_clip import compute_best_clip
q = object.__new__(AwqQuantizer)
q.w_bit, q.group_size, q.zero_point = 4, 64, True
g = torch.Generator().manual_seed(0)
same = total = 0
for co, ci in ((128, 256), (256, 128)):
    w = torch.randn(co, ci, generator=g) * torch.exp(torch.randn(1, ci, generator=g))
    x = torch.randn(4, 96, ci, generator=g)
    ours = compute_best_clip(q, w, x)
    theirs = AwqQuantizer._compute_best_clip(q, w, x)
    same += int((ours == theirs).sum()); total += ours.numel()
    # features cached in another dtype (on a GPU, on another device): moved to the weight's
    assert torch.equal(compute_best_clip(q, w, x.double()), ours)
print(same, total)
"""


def test_fast_clip_search_chooses_as_autoawq():
    py = venv_python("autoawq")
    if not py.exists():
        pytest.fail("the AutoAWQ environment is missing: run `make setup`")
    p = subprocess.run([str(py), "-c", SCRIPT, str(REPO_ROOT / "quantizers")], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    same, total = map(int, p.stdout.split()[-2:])
    assert same / total >= 0.99, (same, total)  # a tie within float rounding may fall the other way
