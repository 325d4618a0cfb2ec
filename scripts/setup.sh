#!/usr/bin/env bash
# Create .venv (if missing) and install tiptrust into it: `scripts/setup.sh` for the product,
# `scripts/setup.sh test` for the product and its test tools, `scripts/setup.sh bench` for those and
# the peers the benchmarks measure beside tiptrust.
#
# The install is editable, so source changes need no reinstall: pip runs only when the venv is
# new, or pyproject.toml or this script changed since the last install of this mode, or the mode
# asks for more than was installed (the product after `test` is already there; `test` after the
# product is not). .venv/.tiptrust-installed records what was installed; delete it to force a
# reinstall. Prints nothing when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
mode="${1:-product}"
case "$mode" in
  product) target="." tool=.venv/bin/tiptrust ;;
  test) target=".[test]" tool=.venv/bin/pytest ;;
  bench) target=".[test,bench]" tool=.venv/bin/pytest ;;  # the peers benchmarks/ measure beside us
  *) echo "usage: scripts/setup.sh [test|bench]" >&2; exit 2 ;;
esac
stamp=.venv/.tiptrust-installed
requirements="$(cat pyproject.toml scripts/setup.sh | cksum)"  # POSIX: a checksum and a size

if [ -x .venv/bin/python ] && [ -x "$tool" ] && [ -f "$stamp" ]; then
  installed="$(cat "$stamp")"
  # Each mode includes the ones before it: product < test < bench.
  case "$mode:${installed%% *}" in
    product:product | product:test | product:bench | test:test | test:bench | bench:bench) covered=1 ;;
    *) covered=0 ;;
  esac
  if [ "$covered" = 1 ] && [ "${installed#* }" = "$requirements" ]; then
    exit 0
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
rm -f "$stamp"
# -W hides only setuptools' "Editable installation." note (shown for every editable install);
# its deprecation warnings still show.
pip=(.venv/bin/python -W "ignore:Editable installation.:UserWarning"
  -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
"${pip[@]}" -e "$target"
echo "$mode $requirements" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
