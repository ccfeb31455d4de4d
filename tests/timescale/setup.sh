#!/usr/bin/env bash
# A real TimescaleDB for the timescale-flavour tests, built from the vendored source
# (../shared/vendor/timescaledb-2.28.3.tar.gz, see its README) — no package registry reachable
# here ships a TimescaleDB server. Builds once into a cache dir (reused), installs into a *copy*
# of the server's tree (PostgreSQL finds lib/ and share/ relative to its binary) so the system
# cluster on :5432 stays untouched, then starts two clusters from that copy:
#   - port 55432: timescaledb preloaded (the real thing);
#   - port 55433: the extension available but NOT preloaded (the flavour check's negative case).
# Prints `export QUANTRAC_TEST_TIMESCALE_URL=...` (and ..._NOPRELOAD_URL) for `eval`.
# Without the vendored source it says so and exits 0 (the tests then skip with that reason);
# with CI=true a missing source or a failed build is a failure.
# Needs: postgresql-15, postgresql-server-dev-15, cmake (.ci/run installs them); run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=2.28.3
SHA256=ec2f7de0ba53a473c01e0a57e09053898c6b1f7487228caff0f1d31c8cb2dedb
SRC=${QUANTRAC_TIMESCALE_SOURCE:-$ROOT/../shared/vendor/timescaledb-$VERSION.tar.gz}
CACHE=${QUANTRAC_TIMESCALE_CACHE:-/var/cache/quantrac-timescaledb}
RUN=${QUANTRAC_TIMESCALE_RUN:-/var/tmp/quantrac-timescaledb}
PORT=${QUANTRAC_TIMESCALE_PORT:-55432}
NOPRELOAD_PORT=$((PORT + 1))
PGVER=15
log() { echo "timescale-setup: $*" >&2; }

if [ ! -f "$SRC" ]; then
  log "vendored TimescaleDB source not found at $SRC; the TimescaleDB tests will skip"
  [ "${CI:-}" = true ] && { log "CI=true: a missing TimescaleDB source is a failure"; exit 1; }
  exit 0
fi
echo "$SHA256  $SRC" | sha256sum -c --quiet - >&2 || { log "sha256 mismatch for $SRC"; exit 1; }

TREE=$CACHE/$VERSION/root   # a copy of the server's tree with timescaledb installed into it
BIN=$TREE/usr/lib/postgresql/$PGVER/bin
if [ ! -f "$CACHE/$VERSION/installed" ]; then
  start=$(date +%s)
  rm -rf "${CACHE:?}/$VERSION"
  mkdir -p "$CACHE/$VERSION/src" "$TREE/usr/lib/postgresql" "$TREE/usr/share/postgresql"
  cp -a "/usr/lib/postgresql/$PGVER" "$TREE/usr/lib/postgresql/"
  cp -a "/usr/share/postgresql/$PGVER" "$TREE/usr/share/postgresql/"
  tar -xzf "$SRC" -C "$CACHE/$VERSION/src" --strip-components=0
  srcdir=$(dirname "$(find "$CACHE/$VERSION/src" -maxdepth 2 -name bootstrap | head -1)")
  buildlog=$CACHE/$VERSION/build.log
  log "building TimescaleDB $VERSION (about 2 minutes; log: $buildlog)"
  if ! (cd "$srcdir" \
        && ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
             -DGENERATE_DOWNGRADE_SCRIPT=OFF -DPG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config" \
        && make -C build -j"$(nproc)" && make -C build install DESTDIR="$TREE") >"$buildlog" 2>&1; then
    tail -30 "$buildlog" >&2
    log "TimescaleDB build failed"
    exit 1
  fi
  rm -rf "$CACHE/$VERSION/src"
  touch "$CACHE/$VERSION/installed"
  log "built and installed in $(( $(date +%s) - start ))s"
fi

cluster() {  # cluster PORT PRELOAD(yes|no)
  local port=$1 preload=$2 data=$RUN/data-$1 sock=$RUN/sock-$1
  mkdir -p "$RUN" "$sock"
  chown postgres:postgres "$RUN" "$sock"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    runuser -u postgres -- "$BIN/initdb" -D "$data" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    {
      echo "port = $port"
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$sock'"
      echo "max_connections = 100"
      echo "timescaledb.telemetry_level = off"
      echo "fsync = off"
      [ "$preload" = yes ] && echo "shared_preload_libraries = 'timescaledb'"
      [ "$preload" = yes ] && echo "timescaledb.max_background_workers = 8"
      true
    } >>"$data/postgresql.auto.conf"
  fi
  if ! runuser -u postgres -- "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$data" -l "$RUN/server-$port.log" -w -t 60 start >/dev/null \
      || { tail -20 "$RUN/server-$port.log" >&2; log "cluster on :$port did not start"; exit 1; }
  fi
}
cluster "$PORT" yes
cluster "$NOPRELOAD_PORT" no
echo "export QUANTRAC_TEST_TIMESCALE_URL=postgresql://postgres@127.0.0.1:$PORT/postgres"
echo "export QUANTRAC_TEST_TIMESCALE_NOPRELOAD_URL=postgresql://postgres@127.0.0.1:$NOPRELOAD_PORT/postgres"
