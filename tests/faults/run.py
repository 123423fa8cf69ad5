"""`make faults`: the fault battery alone, closing with one line "N passed, N failed"."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest


class _Count:
    def __init__(self) -> None:
        self.passed = self.failed = 0

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" and report.passed:
            self.passed += 1
        elif report.failed:
            self.failed += 1


def main(argv: list[str]) -> int:
    count = _Count()
    rc = pytest.main(["-q", "-ra", str(Path(__file__).parent), *argv], plugins=[count])
    print(f"{count.passed} passed, {count.failed} failed")
    return int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
