#!/usr/bin/env bash
# Create .venv (if missing or out of date with requirements.lock) and install vllm-fleet into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.lock-sha
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  pip_install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v -E '^WARNING: Location|BuildBackendWarning|^ *!!|\*\*\*|Please be careful|name as your package|with strategy|^ *$|return ' >&2); }
  pip_install -r requirements.lock
  pip_install --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
