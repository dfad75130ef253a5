#!/usr/bin/env bash
# Stop every server started by start-all.sh / start-*.sh (each by its own pidfile). PURGE=1 deletes data too.
HERE=$(cd "$(dirname "$0")" && pwd)
SERVICES=${SERVICES:-mariadb postgres redis rabbitmq}
for s in $SERVICES; do "$HERE/stop-$s.sh" & done
wait
exit 0
