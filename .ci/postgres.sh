#!/usr/bin/env bash
# A throwaway PostgreSQL for the db tests. Idempotent: safe to run or source again and again.
#
#   source .ci/postgres.sh        # starts (or reuses) the cluster, exports SHIREN_TEST_POSTGRES_URL
#   bash .ci/postgres.sh          # the same, printing `export SHIREN_TEST_POSTGRES_URL=...`
#   bash .ci/postgres.sh stop     # stops the cluster and removes its directory
#
# Installs Debian's `postgresql` if no server binaries are found (needs root or sudo; no prompts).
# The cluster lives in $SHIREN_PG_DIR (default: ${TMPDIR:-/tmp}/shiren-pg), owned by the `postgres`
# user when run as root, listens on 127.0.0.1 only (first free port from $SHIREN_PG_PORT, default
# 54329), keeps its socket in that dir, trusts local connections and runs with fsync off: test data only.
# When sourced it never exits the caller's shell and leaves the caller's `set` options alone.

_shiren_pg_main() {
    local action="${1:-start}"
    local dir="${SHIREN_PG_DIR:-${TMPDIR:-/tmp}/shiren-pg}"
    local dbname="${SHIREN_PG_DBNAME:-shiren_test}"
    local data="$dir/data" log="$dir/postgres.log" portfile="$dir/port"
    local bindir="" port="" as_pg=()

    _shiren_pg_log() { echo "postgres.sh: $*" >&2; }

    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -z "$bindir" && "$action" != "stop" ]]; then
        _shiren_pg_log "PostgreSQL not installed; installing Debian's postgresql"
        local sudo=()
        if [[ "$(id -u)" != 0 ]]; then
            command -v sudo >/dev/null || { _shiren_pg_log "not root and no sudo: cannot apt-get install postgresql"; return 1; }
            sudo=(sudo -n)
        fi
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2 || { _shiren_pg_log "apt-get update failed"; return 1; }
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            postgresql </dev/null >&2 || { _shiren_pg_log "apt-get install postgresql failed"; return 1; }
        bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
        [[ -n "$bindir" ]] || { _shiren_pg_log "postgresql installed but no /usr/lib/postgresql/*/bin"; return 1; }
    fi

    # The server refuses to run as root: run its tools as `postgres` then.
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres \
            || { _shiren_pg_log "cannot create the postgres user"; return 1; }
        if command -v runuser >/dev/null; then as_pg=(runuser -u postgres --); else as_pg=(su postgres -s /bin/sh -c); fi
    fi
    _shiren_pg_run() {  # run a PostgreSQL tool as the cluster's owner
        if [[ ${#as_pg[@]} -eq 0 ]]; then "$@";
        elif [[ "${as_pg[0]}" == runuser ]]; then "${as_pg[@]}" "$@";
        else "${as_pg[@]}" "$(printf '%q ' "$@")"; fi
    }

    if [[ "$action" == "stop" ]]; then
        if [[ -n "$bindir" && -f "$data/postmaster.pid" ]]; then
            _shiren_pg_run "$bindir/pg_ctl" -D "$data" -m immediate -w stop >&2 || true
        fi
        rm -rf "$dir"
        unset SHIREN_TEST_POSTGRES_URL
        _shiren_pg_log "stopped and removed $dir"
        return 0
    fi

    # Already running? Reuse it.
    if [[ -f "$portfile" && -f "$data/postmaster.pid" ]]; then
        port="$(cat "$portfile")"
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 3; then
            _shiren_pg_log "reusing the cluster in $dir on port $port"
        else
            _shiren_pg_run "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
            rm -f "$data/postmaster.pid"
            port=""
        fi
    fi

    if [[ -z "$port" ]]; then
        mkdir -p "$dir" || { _shiren_pg_log "cannot create $dir"; return 1; }
        chmod 0700 "$dir"
        if [[ "$(id -u)" == 0 ]]; then chown postgres: "$dir"; fi
        if [[ ! -f "$data/PG_VERSION" ]]; then
            rm -rf "$data"
            _shiren_pg_run "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
                || { _shiren_pg_log "initdb failed:"; cat "$dir/initdb.log" >&2; return 1; }
        fi
        port="${SHIREN_PG_PORT:-54329}"
        local tries=0
        while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do  # something answers: take the next port
            port=$((port + 1)); tries=$((tries + 1))
            [[ $tries -lt 50 ]] || { _shiren_pg_log "no free port near ${SHIREN_PG_PORT:-54329}"; return 1; }
        done
        _shiren_pg_run "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -o \
            "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null || { _shiren_pg_log "pg_ctl start failed:"; tail -n 30 "$log" >&2; return 1; }
        echo "$port" >"$portfile"
        _shiren_pg_log "started PostgreSQL ($bindir) in $dir on 127.0.0.1:$port"
    fi

    local psql=("$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
    if [[ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'" </dev/null)" != 1 ]]; then
        "${psql[@]}" -c "CREATE DATABASE \"$dbname\"" </dev/null >&2 || { _shiren_pg_log "cannot create database $dbname"; return 1; }
    fi

    export SHIREN_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/$dbname"
    echo "export SHIREN_TEST_POSTGRES_URL=$SHIREN_TEST_POSTGRES_URL"
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: the caller's positional arguments are not ours.
    _shiren_pg_main start
    _shiren_pg_rc=$?
    unset -f _shiren_pg_main _shiren_pg_log _shiren_pg_run
    return $_shiren_pg_rc
else
    _shiren_pg_main "$@"
    exit $?
fi
