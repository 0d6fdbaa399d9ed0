#!/usr/bin/env bash
# The Python package's suite: builds the extension into a virtualenv of its own (pinned tools),
# then runs the Django project's tests, on SQLite and, when AIWAF_TEST_POSTGRES_URL is set, on
# PostgreSQL too (AIWAF_REQUIRE_SERVICES=1 makes its absence a failure).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${AIWAF_PY_VENV:-target/py-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    maturin==1.16.0 Django==5.2.19 pytest==8.4.2 pytest-django==4.14.0 gunicorn==23.0.0 \
    Flask==3.1.2 fastapi==0.118.0 starlette==0.48.0 httpx==0.28.1 \
    "psycopg[binary]==3.2.10"
# the dev profile shares the workspace's target dir with `cargo test`
VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH" "$venv/bin/maturin" develop --quiet
cd tests/python
echo "-- Django on SQLite"
"../../$venv/bin/python" -m pytest -q
if [ -n "${AIWAF_TEST_POSTGRES_URL:-}" ]; then
    echo "-- Django on PostgreSQL ($AIWAF_TEST_POSTGRES_URL)"
    AIWAF_TEST_DJANGO_DB="$AIWAF_TEST_POSTGRES_URL" "../../$venv/bin/python" -m pytest -q
elif [ "${AIWAF_REQUIRE_SERVICES:-}" = 1 ]; then
    echo "AIWAF_TEST_POSTGRES_URL is not set and AIWAF_REQUIRE_SERVICES=1" >&2
    exit 1
else
    echo "-- Django on PostgreSQL: skipped (AIWAF_TEST_POSTGRES_URL not set)"
fi
