#!/usr/bin/env bash
# version.sh: prints the build identity of the git checkout it is run in,
# as one line "VERSION COMMIT DATE", for build.sh to stamp into the
# binaries (NAME -v shows "NAME VERSION (commit COMMIT, built DATE, ...)"):
#
#   VERSION  the release tag (git describe --tags: "v1.2.0", or
#            "v1.2.0-3-g3f2a9c1" three commits after it); "dev" when no tag
#            is reachable, never the commit again
#   COMMIT   the short commit, with "-dirty" when the tree has changes;
#            "unknown" outside a git checkout
#   DATE     the build time, UTC, RFC 3339
set -euo pipefail
version="$(git describe --tags 2>/dev/null || echo dev)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
	commit="$commit-dirty"
fi
date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "$version $commit $date"
