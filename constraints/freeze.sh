#!/usr/bin/env bash
# Regenerate one pinned environment (`make constraints` runs it for each supported Airflow):
#
#   constraints/freeze.sh AIRFLOW_VERSION CONSTRAINTS_FILE EXTRAS
#
# 1. a throw-away venv gets exactly the versions the file pins now (--no-deps: nothing resolved);
# 2. the provider is installed with EXTRAS (e.g. test,celery) and apache-airflow==AIRFLOW_VERSION:
#    pip keeps every installed version that still fits and moves only what the requirements force;
# 3. `pip check` must pass, then `pip freeze` (without the provider itself) replaces the file,
#    keeping its leading comment lines.
# A package no longer needed stays pinned (harmless); delete its line to drop it.
set -euo pipefail
version=$1 file=$2 extras=$3
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
pip="$work/venv/bin/pip"
"$pip" install --quiet --upgrade pip
grep -v -E '^[[:space:]]*(#|$)' "$file" >"$work/pinned.txt"
"$pip" install --quiet --no-deps -r "$work/pinned.txt"
echo "apache-airflow==$version" >"$work/airflow.txt"
"$pip" install --quiet -c "$work/airflow.txt" -e ".[$extras]"
"$pip" check
{
    grep -E '^#' "$file" || true
    "$pip" freeze --exclude-editable | grep -v -i -E '^airflow-provider-aiq-braze(==| @)'
} >"$work/frozen.txt"
mv "$work/frozen.txt" "$file"
echo "$file: $(grep -c -v '^#' "$file") packages pinned for Airflow $version"
