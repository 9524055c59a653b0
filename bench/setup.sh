#!/usr/bin/env bash
# Set-up for `npm run bench` (its pre-script, after scripts/setup.sh): the L7 scenario's
# baselines and load generator. Installs what is missing, does nothing when everything
# is in place. Needs root and apt-get; without them it says what is missing and the
# L7 scenario fails at its start (the L4 scenario needs none of these).
set -euo pipefail

# nginx and haproxy: the equivalent L7 proxy pairs; h2load (nghttp2-client): the
# HTTP/1.1, HTTP/2 and gRPC load generator.
declare -A package_of=([nginx]=nginx [haproxy]=haproxy [h2load]=nghttp2-client)
missing=()
for tool in nginx haproxy h2load; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || missing+=("${package_of[$tool]}")
done
((${#missing[@]})) || exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/setup: missing ${missing[*]} (needs root and apt-get to install); the l7 scenario cannot run" >&2
  exit 0
fi
echo "bench/setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# --no-install-recommends: the daemons only, no extras.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Under systemd Debian starts the service a package installs; the bench runs its own
# instances (in pods, with its own configs) and needs none. Only the services installed
# just now are stopped and disabled: one that was there before is left alone.
for service in "${missing[@]}"; do
  [[ $service == nginx || $service == haproxy ]] || continue
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done
