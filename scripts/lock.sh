#!/usr/bin/env bash
# Regenerate requirements.lock from a fresh environment built from pyproject's exact pins.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check setuptools==80.9.0 -e '.[dev]'
{
  echo "# Exact versions of every package in .venv (generated: .venv/bin/pip freeze after installing pyproject's pins + [dev])."
  echo "# Installed by scripts/setup.sh; regenerate with scripts/lock.sh."
  "$tmp/venv/bin/pip" freeze --all --exclude-editable | grep -v -E '^(pip|vllm-fleet)==' | sed 's/_/-/g' | sort -f
} > requirements.lock
rm -rf "$tmp" *.egg-info
echo "wrote requirements.lock"
