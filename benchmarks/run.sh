#!/usr/bin/env bash
# The benchmark in one command: builds benchmarks/.venv (docko-worker from this repository,
# pgqueuer 1.x, procrastinate 3.x, matplotlib, psutil, the no-op handler package) for the harness
# and the producers, and one environment per system for its worker (benchmarks/.venv-<system>,
# from worker-envs/<system>.txt: the system and the handlers, nothing else), then runs every
# scenario and writes benchmarks/results/latest.{md,json,png}.
#
#   bash benchmarks/run.sh                       # full run, ~12-17 minutes on 2 cores
#   bash benchmarks/run.sh --runs 1 --skip-million --systems docko --jobs 5000
#   BENCH_DATABASE_URL=postgresql://user@host:5432/postgres bash benchmarks/run.sh
#
# Options are those of `python -m harness --help`.
set -euo pipefail

cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV=.venv

# The source files of docko-worker and of the handler package, for the worker environments'
# stamps: those install them as built wheels, which a change to the working tree must replace.
sources() {
    find ../docko_worker ../sql bench_handlers -type f \( -name '*.py' -o -name '*.sql' \) \
        -not -path '*/__pycache__/*' | LC_ALL=C sort
}

# ensure_env DIR STAMP LABEL REQUIREMENTS [PIP ARGS...]: create the virtual environment DIR and
# (re)install REQUIREMENTS into it whenever they, a pyproject.toml or (with WITH_SOURCES=1) the
# sources changed since STAMP was written.
ensure_env() {
    local dir="$1" stamp="$1/$2" label="$3" requirements="$4"
    shift 4
    local wanted
    wanted="$(
        {
            cat "$requirements" ../pyproject.toml bench_handlers/pyproject.toml
            if [[ "${WITH_SOURCES:-0}" == 1 ]]; then sources | xargs cat; fi
        } | sha256sum | cut -d' ' -f1
    )"
    if [[ ! -x "$dir/bin/python" ]]; then
        "$PYTHON" -m venv "$dir"
    fi
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
        echo "installing the $label environment in benchmarks/$dir ..."
        "$dir/bin/python" -m pip install --quiet --upgrade pip
        "$dir/bin/python" -m pip install --quiet -r "$requirements" "$@"
        echo "$wanted" > "$stamp"
    fi
}

ensure_env "$VENV" .bench-installed benchmark requirements.txt -e .. -e ./bench_handlers

# Each worker runs from an environment holding only its system and the handlers, installed as a
# daemon is deployed: from built wheels, byte-compiled, with nothing else beside them (a daemon's
# start-up imports whatever its dependencies find installed, and compiles what has no bytecode).
for spec in worker-envs/*.txt; do
    system="$(basename "$spec" .txt)"
    WITH_SOURCES=1 ensure_env ".venv-$system" .installed "$system worker" "$spec"
done

start=$(date +%s)
status=0
"$VENV/bin/python" -m harness "$@" || status=$?
echo "benchmark finished in $(( $(date +%s) - start )) s (exit $status)"
exit "$status"
