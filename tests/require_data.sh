#!/usr/bin/env bash
# Runs a command that needs the reference data: SKIP (77) when the folder is missing on
# a developer machine, FAIL in CI, exactly like the doctest main does.
data=${SMALLCODER_TEST_DATA:-../shared}
if [ ! -f "$data/README.md" ]; then
  if [ -n "${CI:-}" ] && [ "${CI}" != "false" ]; then
    echo "error: reference data not found at '$data'; CI requires it" >&2
    exit 1
  fi
  echo "skipped: reference data not found at '$data'" >&2
  exit 77
fi
exec "$@"
