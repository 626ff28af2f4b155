#!/usr/bin/env bash
# Regenerate envs/lock.txt, the exact package set the README's install pins, from
# pyproject.toml's ranges (all extras) and envs/lock.in (torch 2.13.0).  pip-tools resolves
# with this machine's pip configuration; on the reference machines it picks torch's CPU
# build (2.13.0+cpu) from local disk, and the lock records it as plain `torch==2.13.0`, the
# spelling that takes that build there and PyPI's build elsewhere.
# Usage (repository root):  bash envs/lock.sh [--upgrade | --upgrade-package NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${PGPROBE_LOCK_VENV:-${TMPDIR:-/tmp}/pgprobe-lock-venv}"
[ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q "pip-tools==7.6.2"; }
CUSTOM_COMPILE_COMMAND="bash envs/lock.sh" "$tools/bin/pip-compile" --quiet \
    --extra test --extra slurm --extra docs --strip-extras \
    --no-emit-find-links --no-emit-index-url --output-file envs/lock.txt "$@" \
    pyproject.toml envs/lock.in
sed -i -E 's/^(torch==[0-9.]+)\+cpu$/\1/' envs/lock.txt
echo "envs/lock.txt: $(grep -c '^[A-Za-z0-9_.-]*==' envs/lock.txt) packages pinned"
