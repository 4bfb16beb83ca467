#!/usr/bin/env bash
# docs.sh build|serve|plots|env — the documentation site (MkDocs with the
# Material theme, pinned in docs/requirements.txt, from PyPI into a
# virtualenv under the cache directory; reinstalled when the pins change).
#
#   build   write the static site into site/ in strict mode (any warning,
#           a broken link or anchor included, fails)
#   serve   serve it with live reload on localhost:8080 (DOCS_ADDR overrides)
#   plots   docs/benchmarks/*.svg and summary.md from docs/benchmarks/run.txt
#           (or BENCH_RUN) into docs/benchmarks (or BENCH_OUT), with
#           matplotlib (docs/requirements-plots.txt)
#   env     only install the toolchain
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cache=${OUTBOX_CDC_TEST_CACHE:-${OUTBOX_CDC_CACHE:-${HOME:-/root}/.cache/outbox-cdc}}
venv="$cache/docs-venv"

# install REQUIREMENTS... into the venv unless the same pins are there.
install() {
	local stamp want
	stamp="$venv/.stamp-$(basename "$1" .txt)"
	want=$(cat "$@" | sha256sum | cut -d' ' -f1)
	if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		return
	fi
	echo "docs: installing $(basename "$1") into $venv"
	[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
	local args=()
	for f in "$@"; do args+=(-r "$f"); done
	"$venv/bin/pip" install -q --disable-pip-version-check "${args[@]}"
	echo "$want" >"$stamp"
}

install docs/requirements.txt
case "${1:-build}" in
build) "$venv/bin/mkdocs" build --strict --clean --site-dir site ;;
serve) exec "$venv/bin/mkdocs" serve --strict --dev-addr "${DOCS_ADDR:-localhost:8080}" ;;
plots)
	install docs/requirements-plots.txt docs/requirements.txt
	"$venv/bin/python" scripts/bench-plots.py "${BENCH_RUN:-docs/benchmarks/run.txt}" "${BENCH_OUT:-docs/benchmarks}"
	;;
env) ;;
*) echo "usage: docs.sh build|serve|plots|env" >&2; exit 2 ;;
esac
