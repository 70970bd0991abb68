#!/usr/bin/env bash
# The test command: sets up .venv when needed, starts a throwaway PostgreSQL for the db tests, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f .ci/postgres.sh ] && [ -z "${SHIREN_TEST_POSTGRES_URL:-}" ]; then
  # shellcheck disable=SC1091
  source .ci/postgres.sh
fi
exec .venv/bin/python -m pytest "$@"
