#!/usr/bin/env bash
# Start the data tier for integration tests on loopback: installs what is missing (one apt-get run),
# then starts the servers in parallel and waits for all of them.
#   env: SERVICES ("mariadb postgres redis rabbitmq s3"), DATA_ROOT (/tmp/voip-ci-data), plus each
#        start-*.sh's own variables (ports, users, passwords).
# Writes $DATA_ROOT/env (export lines: MYSQL_URL PG_URL REDIS_URL AMQP_URL S3_*) for tests to source.
# Exit status non-zero if any server failed; its log tail is printed.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SERVICES=${SERVICES:-mariadb postgres redis rabbitmq}
t0=$(now)

pkgs=()
for s in $SERVICES; do
  case $s in
    mariadb) command -v mariadbd >/dev/null || pkgs+=(mariadb-server) ;;
    postgres) [ -x "/usr/lib/postgresql/${PG_VERSION:-15}/bin/postgres" ] || pkgs+=("postgresql-${PG_VERSION:-15}") ;;
    redis) command -v redis-server >/dev/null || pkgs+=(redis-server) ;;
    rabbitmq) [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || pkgs+=(rabbitmq-server) ;;
    nats) command -v nats-server >/dev/null || pkgs+=(nats-server) ;;
    s3) python3 -c 'import venv' 2>/dev/null || pkgs+=(python3-venv) ;;
    *) die "unknown service '$s'" ;;
  esac
done
[ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"

declare -A pids
for s in $SERVICES; do
  "$HERE/start-$s.sh" >"$DATA_ROOT/start-$s.out" 2>&1 &
  pids[$s]=$!
done
fail=0
for s in $SERVICES; do
  if wait "${pids[$s]}"; then
    grep '^READY' "$DATA_ROOT/start-$s.out"
  else
    fail=1
    echo "FAILED $s:" >&2
    tail -20 "$DATA_ROOT/start-$s.out" >&2
  fi
done

{
  echo "# written by start-all.sh; source it in tests"
  for s in $SERVICES; do
    line=$(grep '^READY' "$DATA_ROOT/start-$s.out" 2>/dev/null || true)
    case $s in
      mariadb) echo "export MYSQL_URL=${line#*url=}" | cut -d' ' -f1-2 ;;
      postgres) echo "export PG_URL=${line#*url=}" | cut -d' ' -f1-2 ;;
      redis) echo "export REDIS_URL=${line#*url=}" | cut -d' ' -f1-2 ;;
      rabbitmq) echo "export AMQP_URL=${line#*url=}" | cut -d' ' -f1-2 ;;
      nats) echo "export NATS_URL=${line#*url=}" | cut -d' ' -f1-2 ;;
      s3)
        for k in endpoint bucket access_key secret_key region; do
          v=$(sed -n "s/.* $k=\([^ ]*\).*/\1/p" <<<"$line")
          echo "export S3_${k^^}=$v"
        done ;;
    esac
  done
} >"$DATA_ROOT/env"
echo "ALL $( [ $fail = 0 ] && echo READY || echo FAILED ) services=[$SERVICES] in $(elapsed "$t0")s env=$DATA_ROOT/env"
exit $fail
