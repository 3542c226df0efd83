#!/bin/sh
# Entry point wrapper for the RabbitMQ container: write the boot definitions, then exec the
# image's own entry point ("$@").
#
# RabbitMQ (3.10 and 4.x alike) creates no user from the environment once definitions are
# imported at boot, and a password must never be committed, so the application user is rendered
# here from RABBITMQ_USER / RABBITMQ_PASSWORD next to the committed topology (definitions.json).
#
#   OFFLOAD_DEFINITIONS_SOURCE  the topology file   (default /etc/rabbitmq/offload/definitions.json)
#   OFFLOAD_DEFINITIONS_DIR     where RabbitMQ reads (default /var/lib/rabbitmq/definitions)
set -eu

: "${RABBITMQ_USER:?RABBITMQ_USER must name the application user}"
: "${RABBITMQ_PASSWORD:?RABBITMQ_PASSWORD must be set}"
source_file=${OFFLOAD_DEFINITIONS_SOURCE:-/etc/rabbitmq/offload/definitions.json}
target_dir=${OFFLOAD_DEFINITIONS_DIR:-/var/lib/rabbitmq/definitions}
vhost=offload  # the vhost definitions.json declares (services/common/topology.py DEPLOY_VHOST)

for value in "$RABBITMQ_USER" "$RABBITMQ_PASSWORD"; do
  case $value in
    *[[:cntrl:]]*)
      echo "render-definitions: control characters are not allowed in RabbitMQ credentials" >&2
      exit 64
      ;;
  esac
done

# JSON string escaping for printable text: backslash and double quote are all that need it.
json_string() {
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

umask 077
mkdir -p "$target_dir"
cp "$source_file" "$target_dir/10-topology.json"
# The vhost is repeated so this file imports correctly whichever file RabbitMQ reads first.
cat >"$target_dir/20-users.json" <<JSON
{
  "users": [
    {"name": $(json_string "$RABBITMQ_USER"), "password": $(json_string "$RABBITMQ_PASSWORD"),
     "tags": ["administrator"]}
  ],
  "vhosts": [{"name": $(json_string "$vhost")}],
  "permissions": [
    {"user": $(json_string "$RABBITMQ_USER"), "vhost": $(json_string "$vhost"),
     "configure": ".*", "write": ".*", "read": ".*"}
  ]
}
JSON
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
  chown -R rabbitmq:rabbitmq "$target_dir"
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
