#!/usr/bin/env bash
# Creates (idempotently) the virtualenv the LangGraph side of the orchestrator
# and agent benchmarks runs in, with the latest langgraph from PyPI.
#
#   benches/langgraph/setup.sh            # create / reuse, install if missing
#   benches/langgraph/setup.sh --upgrade  # refresh to the newest releases
#
# The venv lives in ${CONVERGIO_BENCH_CACHE:-$HOME/.cache/convergio-bench}/langgraph-venv;
# its python is printed on the last line ("python: <path>") for a harness to pick up.
set -euo pipefail

upgrade=0
for arg in "$@"; do
  case "$arg" in
    --upgrade) upgrade=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

cache="${CONVERGIO_BENCH_CACHE:-$HOME/.cache/convergio-bench}"
venv="$cache/langgraph-venv"
py="${PYTHON:-python3}"
# langchain-core provides the fake chat model of the fake-model mode and the
# base class of agent_bench.py's fake tool-calling model; langgraph brings
# langgraph-prebuilt (create_react_agent).
packages=(langgraph langgraph-checkpoint-sqlite langchain-core)

if [[ ! -x "$venv/bin/python" ]]; then
  mkdir -p "$cache"
  echo "creating $venv with $("$py" --version 2>&1) ($(command -v "$py"))" >&2
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"

installed() {
  "$vpy" - "${packages[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    for p in sys.argv[1:]:
        version(p)
except PackageNotFoundError:
    sys.exit(1)
PY
}

if [[ $upgrade -eq 1 ]] || ! installed; then
  echo "installing ${packages[*]} from PyPI" >&2
  "$vpy" -m pip install --quiet --disable-pip-version-check --upgrade "${packages[@]}"
else
  echo "already installed (pass --upgrade to refresh)" >&2
fi

"$vpy" - <<'PY'
import sys
from importlib.metadata import version
for p in ("langgraph", "langgraph-prebuilt", "langgraph-checkpoint", "langgraph-checkpoint-sqlite", "langchain-core"):
    print(f"{p} {version(p)}")
print(f"python {sys.version.split()[0]}")
PY
echo "python: $vpy"
