#!/usr/bin/env bash
# The benchmark in one command: builds benchmarks/.venv (docko-worker from this repository,
# pgqueuer 1.x, procrastinate 3.x, matplotlib, psutil, the no-op handler package) for the harness
# and the producers, and one environment per system for its worker (benchmarks/.venv-<system>,
# from worker-envs/<system>.txt: the system and the handlers, nothing else), then runs every
# scenario and writes benchmarks/results/latest.{md,json,png}.
#
#   bash benchmarks/run.sh                       # full run, ~10-15 minutes on 2 cores
#   bash benchmarks/run.sh --runs 1 --skip-million --systems docko --jobs 5000
#   BENCH_DATABASE_URL=postgresql://user@host:5432/postgres bash benchmarks/run.sh
#
# Options are those of `python -m harness --help`.
set -euo pipefail

cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.bench-installed"

wanted="$(cat requirements.txt ../pyproject.toml bench_handlers/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$wanted" ]]; then
    echo "installing the benchmark environment in benchmarks/$VENV ..."
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt -e .. -e ./bench_handlers
    echo "$wanted" > "$STAMP"
fi

# Each worker runs from an environment holding only its system and the handlers, as it would be
# deployed: a daemon's start-up imports whatever its dependencies find installed beside it.
for spec in worker-envs/*.txt; do
    system="$(basename "$spec" .txt)"
    env_dir=".venv-$system"
    env_wanted="$(cat "$spec" ../pyproject.toml bench_handlers/pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [[ ! -x "$env_dir/bin/python" ]]; then
        "$PYTHON" -m venv "$env_dir"
    fi
    if [[ ! -f "$env_dir/.installed" || "$(cat "$env_dir/.installed")" != "$env_wanted" ]]; then
        echo "installing the $system worker environment in benchmarks/$env_dir ..."
        "$env_dir/bin/python" -m pip install --quiet --upgrade pip
        "$env_dir/bin/python" -m pip install --quiet -r "$spec"
        echo "$env_wanted" > "$env_dir/.installed"
    fi
done

start=$(date +%s)
status=0
"$VENV/bin/python" -m harness "$@" || status=$?
echo "benchmark finished in $(( $(date +%s) - start )) s (exit $status)"
exit "$status"
