#!/usr/bin/env bash
# docs.sh build|serve — the documentation site (MkDocs, from PyPI, in a
# virtualenv under the cache directory). serve listens on localhost:8080.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cache=${OUTBOX_CDC_TEST_CACHE:-${OUTBOX_CDC_CACHE:-${HOME:-/root}/.cache/outbox-cdc}}
venv="$cache/docs-venv"
if [[ ! -x "$venv/bin/mkdocs" ]]; then
	echo "docs: installing MkDocs into $venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check -r docs/requirements.txt
fi
case "${1:-build}" in
build) "$venv/bin/mkdocs" build --strict --site-dir site ;;
serve) exec "$venv/bin/mkdocs" serve --dev-addr localhost:8080 ;;
*) echo "usage: docs.sh build|serve" >&2; exit 2 ;;
esac
