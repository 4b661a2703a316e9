# Sourced by scripts/sync and scripts/test: make $ROOT/.venv (or $EXTEND_VENV) and
# install the project into it, once, and again whenever pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EXTEND_VENV:-$ROOT/.venv}"

extras="${1:-}"
stamp="$VENV/.installed${extras:+-$extras}"

if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT${extras:+[$extras]}"
    touch "$stamp"
fi
