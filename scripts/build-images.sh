#!/usr/bin/env bash
# Builds the meshlet-init and meshlet-proxy images with buildah, from Debian packages and
# this checkout, without an image registry (the Dockerfiles in init-container/ and
# sidecar/ start FROM node:24-slim, which needs one) and without a daemon:
#
#   - meshlet-proxy: FROM scratch; the pinned Node binary (node_modules/node,
#     stripped), the C and C++ runtime libraries it and koffi link against, the
#     compiled build (dist/) and the runtime dependencies. No shell, no package manager.
#   - meshlet-init: a minimal Debian root filesystem made with debootstrap (minbase, plus
#     iptables: both backends) with the same Node and /app on top.
#
# Both run `meshlet` (/usr/local/bin/meshlet, a script run by node through its #! line).
# The images go into the local containers storage with the vfs driver (STORAGE_DRIVER
# picks another; it works where overlay mounts do not), where podman finds them:
# `podman --storage-driver vfs run localhost/meshlet-init:<version>`. Push them to a
# registry with `podman push`.
#
# Each image carries the label meshlet.source: a hash of the files it is built from
# (--source-hash prints the checkout's), so a test can tell an image built from other
# sources (test/helpers/podman.ts skips then, rather than test stale code).
#
# Usage: scripts/build-images.sh [init|proxy]...   (both by default)
#        scripts/build-images.sh --source-hash
# Needs root, buildah, debootstrap (init only), binutils' strip (optional), and a Debian
# mirror (DEBIAN_MIRROR) the first time; the root filesystem is kept in MESHLET_IMAGE_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/node_modules/.bin:$PATH
# Passed on every call: buildah and podman each remember their own default otherwise.
DRIVER=${STORAGE_DRIVER:-vfs}
buildah() { command buildah --storage-driver "$DRIVER" "$@"; }
CACHE=${MESHLET_IMAGE_CACHE:-/var/cache/meshlet-images}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
VERSION=$(node -p 'require("./package.json").version')

# Everything that goes into the images, tracked or not (git is not needed).
source_hash() {
  find src init-container scripts/build-images.sh package.json package-lock.json tsconfig.json tsconfig.dist.json -type f -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
if [[ ${1:-} == --source-hash ]]; then source_hash; exit 0; fi
SOURCE=$(source_hash)
targets=("$@")
((${#targets[@]})) || targets=(init proxy)

for tool in buildah node; do
  command -v "$tool" >/dev/null || { echo "build-images: needs $tool" >&2; exit 1; }
done
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The Debian root filesystem: the init image's base, and where the proxy image's
# libraries come from (so that neither depends on what the build machine has installed).
rootfs=$CACHE/rootfs-$SUITE
if [[ ! -f $rootfs/.complete ]]; then
  command -v debootstrap >/dev/null || { echo "build-images: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
  rm -rf "$rootfs"
  echo "build-images: debootstrap $SUITE into $rootfs" >&2
  debootstrap --variant=minbase --include=iptables "$SUITE" "$rootfs" "$MIRROR" >&2
  # What a container never uses: documentation, translations, apt's package lists and cache.
  rm -rf "$rootfs"/usr/share/{doc,man,info,locale} "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*
  touch "$rootfs/.complete"
fi

# /app: the compiled build and the runtime dependencies (npm's own view of them; no
# network, nothing installed).
app=$work/app
mkdir -p "$app"
# `npm run dist`, into a fresh directory: dist/ can hold files of sources since removed.
echo "build-images: compiling src/ (tsconfig.dist.json)" >&2
tsc -p tsconfig.dist.json --outDir "$app/dist"
cp -a package.json "$app/"
npm ls --omit=dev --all --parseable | tail -n +2 | while read -r dir; do
  rel=${dir#"$PWD"/}
  mkdir -p "$app/$(dirname "$rel")" && cp -a "$dir" "$app/$(dirname "$rel")/"
done
# koffi ships a musl build too; the images are glibc.
rm -rf "$app"/node_modules/@koromix/koffi-linux-x64/musl_x64
printf '#!/usr/local/bin/node\n// `meshlet` on PATH; node runs it through the #! line, so the image needs no shell.\nimport "./dist/cli.js";\n' > "$app/meshlet.js"
chmod 0755 "$app/meshlet.js"

node_bin=$work/node
cp "$(readlink -f node_modules/.bin/node)" "$node_bin"
# Debug information and the static symbol table: 18 MB of 127. (The dynamic symbols,
# which native addons such as koffi bind to, stay.)
if command -v strip >/dev/null; then strip "$node_bin"; fi

# Lays out / for an image: node, /app and the meshlet command over `base`.
layout() {
  local root=$1
  mkdir -p "$root/usr/local/bin"
  cp -a "$app" "$root/app"
  cp "$node_bin" "$root/usr/local/bin/node"
  ln -s ../../../app/meshlet.js "$root/usr/local/bin/meshlet"
}

commit() {
  local container=$1 image=$2 old
  old=$(buildah images --noheading --format '{{.ID}}' "localhost/$image:$VERSION" 2>/dev/null || true)
  buildah commit --quiet --rm "$container" "localhost/$image:$VERSION" >/dev/null
  # The image this one replaces, now untagged (unless a container still uses it).
  if [[ -n $old ]]; then buildah rmi "$old" >/dev/null 2>&1 || true; fi
  echo "build-images: localhost/$image:$VERSION ($(buildah images --noheading --format '{{.Size}}' "localhost/$image:$VERSION"))" >&2
}

for target in "${targets[@]}"; do
  case $target in
    proxy)
      root=$work/proxy
      layout "$root"
      # The shared libraries node and koffi load, at the paths the dynamic loader finds
      # them (its own in /lib64, the others in /lib/x86_64-linux-gnu, which it searches
      # without an ld.so.cache), copied from the Debian root filesystem.
      for lib in $(ldd "$node_bin" "$app"/node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
        [[ -e $rootfs$lib ]] || { echo "build-images: $lib is not in $rootfs" >&2; exit 1; }
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$rootfs$lib" "$root$lib"
      done
      c=$(buildah from scratch)
      buildah copy --quiet "$c" "$root" / >/dev/null
      # Numeric, so kubelet can check runAsNonRoot without an /etc/passwd entry.
      buildah config --user 1337:1337 --workingdir /app --env PATH=/usr/local/bin --entrypoint '["meshlet"]' --cmd proxy \
        --label org.opencontainers.image.title=meshlet-proxy --label "org.opencontainers.image.version=$VERSION" --label "meshlet.source=$SOURCE" "$c"
      commit "$c" meshlet-proxy
      ;;
    init)
      root=$work/init
      cp -a "$rootfs" "$root"
      rm -f "$root/.complete"
      layout "$root"
      install -m 0755 init-container/entrypoint.sh "$root/usr/local/bin/meshlet-init"
      c=$(buildah from scratch)
      buildah copy --quiet "$c" "$root" / >/dev/null
      buildah config --user 0 --workingdir /app --env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --entrypoint '["/usr/local/bin/meshlet-init"]' --cmd '[]' \
        --label org.opencontainers.image.title=meshlet-init --label "org.opencontainers.image.version=$VERSION" --label "meshlet.source=$SOURCE" "$c"
      commit "$c" meshlet-init
      ;;
    *) echo "build-images: unknown image $target (init, proxy)" >&2; exit 2 ;;
  esac
done
