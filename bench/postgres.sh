# Sourced by bench/run.sh and bench/ab.sh, which set $work and $PORT.
# A throwaway PostgreSQL cluster in $work/pg on port $((PORT + 10)); sets pg_url.
start_postgres() {
  local pgbin as="" port=$((PORT + 10))
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  mkdir -p "$work/pg/sockets"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$work/pg"
    as="setpriv --reuid=postgres --regid=postgres --init-groups --"
  fi
  $as "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
  # Durable as shipped (fsync, synchronous_commit on): the numbers are what a deployment sees.
  $as "$pgbin/pg_ctl" start -w -D "$work/pg/data" -l "$work/pg/server.log" \
    -o "-p $port -h 127.0.0.1 -k $work/pg/sockets -c shared_buffers=256MB -c max_connections=100" >/dev/null
  pg_stop="$as $pgbin/pg_ctl stop -D $work/pg/data -m fast"
  "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE keyward' >/dev/null
  pg_url="postgres://postgres@127.0.0.1:$port/keyward"
}

