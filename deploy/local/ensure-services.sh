#!/usr/bin/env bash
# Start the local PostgreSQL, Redis and RabbitMQ this machine kind ships, if they are down.
# Used by `make run` and `make test`; a no-op when all three answer.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
if ! rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  rabbitmq-diagnostics -q --timeout 60 wait --pid "$(pgrep -f 'beam.*rabbit' | head -n1)" \
    >/dev/null 2>&1 || sleep 10
fi
# The management API (definitions import, Flower, KEDA's http mode) and the Prometheus endpoint
# (:15692) that the compose stack enables too; enabling is online and idempotent.
for i in $(seq 1 30); do
  rabbitmq-plugins -q enable rabbitmq_management rabbitmq_prometheus >/dev/null 2>&1 && break
  sleep 1
done
for i in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli ping >/dev/null 2>&1 \
    && rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "local services did not come up" >&2
exit 1
