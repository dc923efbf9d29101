#!/usr/bin/env bash
# test.sh: the project's whole test run, as CI runs it: formatting, vet,
# build, then every test (unit, fuzz seeds, end-to-end with the real
# binaries) with the race detector.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
go version
echo "== gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './run/*'))"
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
echo "== go build"
go build ./...
echo "== go test -race"
go test -race -count=1 -timeout 15m ./... 2>&1 | tee /tmp/relaychain-test.$$.log
status=${PIPESTATUS[0]}
passed=$(grep -c '^ok' /tmp/relaychain-test.$$.log || true)
failed=$(grep -c '^\(FAIL\|--- FAIL\)' /tmp/relaychain-test.$$.log || true)
rm -f /tmp/relaychain-test.$$.log
echo "packages: $passed passed, $failed failed"
exit "$status"
