#!/usr/bin/env bash
# Set-up shared by `npm test`, `npm run demo` and `npm run bench` (their pre-scripts):
# installs what is missing and does nothing when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools the network-namespace pods need.
missing=()
# (h2load and nghttp come with nghttp2-client: HTTP/2 clients for the L7 tests; promtool and
# prometheus with prometheus: the scrape tests; podman runs the images that
# scripts/build-images.sh builds with buildah and debootstrap, which it does not run itself:
# a build takes minutes, so test/e2e/images.test.ts skips until one is made.)
for tool in iptables ip6tables ip setpriv curl tcpdump openssl h2load nghttp promtool prometheus podman buildah debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages for: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq iptables iproute2 util-linux curl tcpdump openssl nghttp2-client prometheus buildah podman debootstrap binutils >/dev/null
  else
    echo "setup: missing ${missing[*]} (needs root and apt-get to install); network-namespace tests will be skipped" >&2
  fi
fi

# Node dependencies, including the pinned Node 24 runtime that npm scripts run on.
if [[ ! -x node_modules/.bin/node || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi
