#!/bin/sh
# Fill docker/proxy.conf's @NAME@ placeholders from the environment, then run nginx in the
# foreground. The config goes to /tmp (the root file system is read-only).
#
#   PROXY_SERVER_NAME    the name clients use (the certificate's); Origin must be https:// it
#   PROXY_PUBLIC_PORT    the HTTPS port clients use (443); with it the one allowed Origin
#                        and where plain HTTP redirects: https://NAME[:PORT]
#   PROXY_MAX_BODY_SIZE  largest body of an API call, bytes or k/m (1m); larger: 413
#   PROXY_MAX_ARTIFACT_SIZE  largest artifact upload (PUT .../mlflow-artifacts/...) (100m)
#   PROXY_MAX_ERROR_BYTES    a 4xx answer longer than this (1024) keeps only its error code
#   PROXY_RATE           requests without a login per second per client address (10r/s)
#   PROXY_BURST          requests queued above the rate before 429 (40)
#   PROXY_DELAY          of those, served at once before the rest wait (20, below PROXY_BURST)
#   PROXY_USER_RATE      requests with a login per second per client address (100r/s)
#   PROXY_USER_BURST     requests with a login served above that rate before 429 (200)
#   PROXY_LOGIN_FAILURES failed logins (401 to a request with credentials) from one address
#   PROXY_LOGIN_WINDOW   within this many seconds (5 in 600) bar that address for
#   PROXY_LOGIN_BAN      this many seconds (900): 429 before any password is checked
#   PROXY_LOOPBACK_PORT  the host's port of the inner door, 8000 (MLFLOW_PORT, 5000): MLflow's
#                        UI there, http://127.0.0.1:PORT or localhost, may call the API
set -eu

: "${PROXY_SERVER_NAME:=localhost}"
: "${PROXY_PUBLIC_PORT:=443}"
: "${PROXY_MAX_BODY_SIZE:=1m}"
: "${PROXY_MAX_ARTIFACT_SIZE:=100m}"
: "${PROXY_MAX_ERROR_BYTES:=1024}"
: "${PROXY_RATE:=10r/s}"
: "${PROXY_BURST:=40}"
: "${PROXY_DELAY:=20}"
: "${PROXY_USER_RATE:=100r/s}"
: "${PROXY_USER_BURST:=200}"
: "${PROXY_LOGIN_FAILURES:=5}"
: "${PROXY_LOGIN_WINDOW:=600}"
: "${PROXY_LOGIN_BAN:=900}"
: "${PROXY_LOOPBACK_PORT:=5000}"
for name in PROXY_SERVER_NAME PROXY_MAX_BODY_SIZE PROXY_RATE PROXY_BURST PROXY_USER_RATE; do
  eval "value=\${$name}"
  case "$value" in
    *[!A-Za-z0-9./_-]*)
      echo "proxy-entrypoint: $name has characters a name or size never has: $value" >&2
      exit 78
      ;;
  esac
done
for name in PROXY_MAX_BODY_SIZE PROXY_MAX_ARTIFACT_SIZE; do
  eval "value=\${$name}"
  case "$value" in
    '' | *[!0-9kKmM]* | *[kKmM]?* | [kKmM]*)
      echo "proxy-entrypoint: $name must be a size in bytes, k or m (1m), not $value" >&2
      exit 78
      ;;
  esac
done
for name in PROXY_LOGIN_FAILURES PROXY_LOGIN_WINDOW PROXY_LOGIN_BAN PROXY_PUBLIC_PORT \
  PROXY_MAX_ERROR_BYTES PROXY_USER_BURST PROXY_LOOPBACK_PORT; do
  eval "value=\${$name}"
  case "$value" in
    '' | 0 | *[!0-9]*)
      echo "proxy-entrypoint: $name must be a whole number above 0, not $value" >&2
      exit 78
      ;;
  esac
done
case "$PROXY_DELAY" in
  '' | *[!0-9]*)
    echo "proxy-entrypoint: PROXY_DELAY must be a whole number (0: every request above the rate waits), not $PROXY_DELAY" >&2
    exit 78
    ;;
esac
for file in /run/secrets/tls_certificate /run/secrets/tls_private_key; do
  if [ ! -r "$file" ]; then
    echo "proxy-entrypoint: $file is missing or unreadable (docs/deploy.md, The front door)" >&2
    exit 78
  fi
done
# Browsers leave the default port out of an Origin.
origin="https://$PROXY_SERVER_NAME"
[ "$PROXY_PUBLIC_PORT" = 443 ] || origin="$origin:$PROXY_PUBLIC_PORT"
# The API limit in bytes, for the Lua check.
case "$PROXY_MAX_BODY_SIZE" in
  *[kK]) body_bytes=$((${PROXY_MAX_BODY_SIZE%?} * 1024)) ;;
  *[mM]) body_bytes=$((${PROXY_MAX_BODY_SIZE%?} * 1024 * 1024)) ;;
  *) body_bytes=$PROXY_MAX_BODY_SIZE ;;
esac
sed -e "s|@PROXY_SERVER_NAME@|$PROXY_SERVER_NAME|g" \
  -e "s|@PROXY_ORIGIN@|$origin|g" \
  -e "s|@PROXY_MAX_BODY_BYTES@|$body_bytes|g" \
  -e "s|@PROXY_MAX_ARTIFACT_SIZE@|$PROXY_MAX_ARTIFACT_SIZE|g" \
  -e "s|@PROXY_MAX_ERROR_BYTES@|$PROXY_MAX_ERROR_BYTES|g" \
  -e "s|@PROXY_RATE@|$PROXY_RATE|g" \
  -e "s|@PROXY_BURST@|$PROXY_BURST|g" \
  -e "s|@PROXY_DELAY@|$PROXY_DELAY|g" \
  -e "s|@PROXY_USER_RATE@|$PROXY_USER_RATE|g" \
  -e "s|@PROXY_USER_BURST@|$PROXY_USER_BURST|g" \
  -e "s|@PROXY_LOGIN_FAILURES@|$PROXY_LOGIN_FAILURES|g" \
  -e "s|@PROXY_LOGIN_WINDOW@|$PROXY_LOGIN_WINDOW|g" \
  -e "s|@PROXY_LOGIN_BAN@|$PROXY_LOGIN_BAN|g" \
  -e "s|@PROXY_LOOPBACK_PORT@|$PROXY_LOOPBACK_PORT|g" \
  /etc/nginx/proxy.conf.template >/tmp/nginx.conf
exec nginx -c /tmp/nginx.conf -g 'daemon off;'
