#!/usr/bin/env bash
# Packaging and dependency floors, run by `make test` after the suite:
# 1. build the sdist, and the wheel from it; check what each holds (.ci/check_dist.py);
# 2. in a fresh venv, install the wheel with every dependency at its declared floor
#    (pyproject's `>=` versions, pinned), plus the test tools at theirs;
# 3. run the README's quick start there, from outside the source tree (`pip install` path);
# 4. run the engine's tests from the unpacked sdist against that install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$PY" -m build --outdir "$TMP/dist" . > "$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 1; }
"$PY" .ci/check_dist.py check "$TMP/dist"

"$PY" .ci/check_dist.py floors > "$TMP/floors.txt"
echo "minimum versions: $(tr '\n' ' ' < "$TMP/floors.txt")"
"$PY" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"
WHEEL=$(ls "$TMP"/dist/*.whl)
"$VPY" -m pip install --quiet --disable-pip-version-check \
    -r "$TMP/floors.txt" "asyncflow[otel] @ file://$WHEEL"

"$PY" .ci/check_dist.py quickstart "$TMP/quickstart.py" "$TMP/quickstart.expected"
(cd "$TMP" && "$VPY" quickstart.py > quickstart.out 2> quickstart.err) \
    || { cat "$TMP/quickstart.err"; exit 1; }
diff -u "$TMP/quickstart.expected" "$TMP/quickstart.out"
(cd "$TMP" && "$VPY" -c "import asyncflow, sys; sys.exit('site-packages' not in asyncflow.__file__)")

mkdir "$TMP/src"
tar -xzf "$TMP"/dist/*.tar.gz -C "$TMP/src"
cd "$TMP"/src/asyncflow-*
# `pytest` (not `python -m pytest`): the unpacked tree is not on sys.path, the wheel is tested.
"$TMP/venv/bin/pytest" -q -p no:cacheprovider \
    tests/test_engine.py tests/test_flow.py tests/test_flow_run.py tests/test_states.py \
    tests/test_signals.py tests/test_triggers.py tests/test_task.py tests/test_handlers.py \
    tests/test_retries.py tests/test_mapping.py tests/test_bus.py tests/test_cancellation.py \
    tests/test_caching.py tests/test_context.py tests/test_control_flow.py \
    tests/test_looping.py tests/test_pause.py tests/test_logging.py tests/test_logsetup.py \
    tests/test_integrations_otel.py tests/test_executors.py tests/test_store.py \
    tests/test_results.py tests/test_layering.py
