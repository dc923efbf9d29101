#!/usr/bin/env bash
# build.sh: builds the four daemons and the demo tool into bin/, with the
# version, commit and build date stamped in (shown by NAME -v).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
read -r version commit date < <(scripts/version.sh)
pkg=github.com/relaychain/relaychain/internal/version
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit -X $pkg.Date=$date"
mkdir -p bin
go build -trimpath -ldflags "$ldflags" -o bin/ ./epproxy ./gwproxy ./relay ./tools/chaindemo
if [ -d eventsink ] && [ -f eventsink/main.go ]; then
	go build -trimpath -ldflags "$ldflags" -o bin/ ./eventsink
fi
echo "built $(ls bin | tr '\n' ' ')into bin/ (version $version)"
