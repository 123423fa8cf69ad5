"""User-facing errors: one line on stderr and exit code 2, never a traceback wall."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or environment the user can fix; printed as one line, exit code 2."""

    exit_code = 2


class ToolMissing(UserError):
    """A tool environment (venv, llama.cpp source) that `make setup` creates is missing."""
