"""Runs the schemathesis CLI (installed into .venv by scripts/setup-tools) with one
workaround: on CPython 3.11 up to 3.11.7, `ast.parse` of a large file deep in the stack
can raise `SystemError: AST constructor recursion depth mismatch` (CPython gh-106905).
Hypothesis parses source files only to describe a lambda in a strategy's repr, and its
coverage phase does that deep inside recursive JSON strategies, so the run dies on a
message it never prints. A description of "<unknown>" is what hypothesis itself falls
back to when it cannot find a lambda's source; no generated case changes.

Usage: .venv/bin/python scripts/run_schemathesis.py run URL [options]
"""

import sys

from hypothesis.internal import lambda_sources
from schemathesis.cli import schemathesis

_describe = lambda_sources._lambda_description


def _describe_or_unknown(f):
    try:
        return _describe(f)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_or_unknown

if __name__ == "__main__":
    sys.argv[0] = "schemathesis"
    sys.exit(schemathesis())
