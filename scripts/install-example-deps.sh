#!/usr/bin/env bash
# install-example-deps.sh — what the docs' examples and the binding tests
# run with, into $CACHE/examples (run by install-test-deps.sh; idempotent,
# a second or so when everything is there):
#
#   venv/          Python: psycopg (examples/writing-events/python) and the
#                  CloudEvents SDK (test/testdata/sdk/read.py)
#   node/          Node.js: pg (examples/writing-events/node) and the
#                  CloudEvents SDK (test/testdata/sdk/read.mjs)
#   java/          the PostgreSQL JDBC driver (examples/writing-events/java)
#
# Each part is redone only when its pinned versions change.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${OUTBOX_CDC_TEST_CACHE:-${OUTBOX_CDC_CACHE:-${HOME:-/root}/.cache/outbox-cdc}}
dir="$CACHE/examples"
mkdir -p "$dir"
log() { printf 'install-example-deps: %s\n' "$*"; }
die() { printf 'install-example-deps: ERROR: %s\n' "$*" >&2; exit 1; }

# Pinned here beside the example manifests.
CLOUDEVENTS_PY=cloudevents==2.2.0
CLOUDEVENTS_JS=cloudevents@10.0.0

stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

py_req="$repo/examples/writing-events/python/requirements.txt"
want=$( (stamp "$py_req"; echo "$CLOUDEVENTS_PY") | sha256sum | cut -d' ' -f1)
if [[ ! -f "$dir/venv/.stamp" || "$(cat "$dir/venv/.stamp")" != "$want" ]]; then
	log "Python venv (psycopg, cloudevents) into $dir/venv"
	rm -rf "$dir/venv"
	python3 -m venv "$dir/venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
	"$dir/venv/bin/pip" install -q --disable-pip-version-check -r "$py_req" "$CLOUDEVENTS_PY" >"$CACHE/examples-pip.log" 2>&1 ||
		{ tail -n 30 "$CACHE/examples-pip.log" >&2; die "pip install failed (log: $CACHE/examples-pip.log)"; }
	echo "$want" >"$dir/venv/.stamp"
fi

node_pkg="$repo/examples/writing-events/node/package.json"
want=$( (stamp "$node_pkg"; echo "$CLOUDEVENTS_JS") | sha256sum | cut -d' ' -f1)
if [[ ! -f "$dir/node/.stamp" || "$(cat "$dir/node/.stamp")" != "$want" ]]; then
	command -v npm >/dev/null || die "npm not found (Debian: apt-get install nodejs npm)"
	log "Node.js modules (pg, cloudevents) into $dir/node"
	rm -rf "$dir/node"
	mkdir -p "$dir/node"
	cp "$node_pkg" "$dir/node/package.json"
	(cd "$dir/node" && npm install --no-audit --no-fund --silent --no-package-lock && npm install --no-audit --no-fund --silent --no-save --no-package-lock "$CLOUDEVENTS_JS") >"$CACHE/examples-npm.log" 2>&1 ||
		{ tail -n 30 "$CACHE/examples-npm.log" >&2; die "npm install failed (log: $CACHE/examples-npm.log)"; }
	echo "$want" >"$dir/node/.stamp"
fi

pom="$repo/examples/writing-events/java/pom.xml"
want=$(stamp "$pom")
if [[ ! -f "$dir/java/.stamp" || "$(cat "$dir/java/.stamp")" != "$want" ]]; then
	log "PostgreSQL JDBC driver into $dir/java"
	rm -rf "$dir/java"
	mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dir/java" >"$CACHE/examples-maven.log" 2>&1 ||
		{ tail -n 30 "$CACHE/examples-maven.log" >&2; die "mvn failed (log: $CACHE/examples-maven.log)"; }
	compgen -G "$dir/java/postgresql-*.jar" >/dev/null || die "Maven copied no postgresql jar"
	echo "$want" >"$dir/java/.stamp"
fi
