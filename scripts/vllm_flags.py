#!/usr/bin/env python3
"""Generate the `vllm serve` option table of one vLLM release from vLLM itself (fleet/vllm/table_gen.py, which
`vllm-fleet upgrade vllm VERSION` calls too).

    python scripts/vllm_flags.py generate 0.34.0        # throwaway venv → fleet/catalog/vllm/flags-0.34.0.json
    python scripts/vllm_flags.py dump                   # inside an environment where vllm imports
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs where only vLLM is installed (dump, scripts/vllm_parse_check.py): the generator imports the standard library only.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.vllm.table_gen import _parser, dump, generate, main

__all__ = ["_parser", "dump", "generate", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
