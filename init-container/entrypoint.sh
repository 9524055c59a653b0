#!/bin/sh
# Entry point of the meshlet init container. All configuration comes from MESHLET_*
# environment variables (see docs/init.md); extra arguments are passed through, so
# `args: ["--dry-run"]` in a pod spec works too. exec: init's exit code (documented
# in docs/init.md) becomes the container's, which is what kubectl shows.
set -eu
exec meshlet init --validate "$@"
