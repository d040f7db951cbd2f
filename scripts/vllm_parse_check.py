#!/usr/bin/env python3
"""Parse `vllm serve` argument lists with vLLM's own parser (run with a Python where vllm imports).

Reads a JSON list of argument lists on stdin; prints a JSON list of error strings (null when parsed).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    warnings.simplefilter("ignore")
    from vllm_flags import _parser

    results: list[str | None] = []
    for args in json.load(sys.stdin):
        parser = _parser()
        parser.allow_abbrev = False  # a deployment must not rely on abbreviations
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                parser.parse_args(args)
            results.append(None)
        except SystemExit:
            results.append(err.getvalue().strip().splitlines()[-1] if err.getvalue() else "parse error")
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
