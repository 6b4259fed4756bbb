#!/usr/bin/env bash
# Rebuild resources/rrweb/ from npm: the rrweb recorder (for the customer's
# page) and replayer (for the rep's view), at exactly the versions below.
#
#   make vendor-rrweb          (needs node and npm; nothing else ever downloads these)
#
# LICENSE (rrweb's MIT licence) is committed beside them; the npm packages
# do not carry it, so it was copied once from the rrweb repository.
#
# The files are committed: neither the server, the console, the tests nor CI
# fetch anything at run time.  VERSIONS records what was packed and the
# sha256 of every file, and a test checks the files against it.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORD="@rrweb/record@2.1.6"
REPLAY="@rrweb/replay@2.1.6"
OUT=resources/rrweb

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$RECORD" "$REPLAY" >/dev/null)
mkdir -p "$work/record" "$work/replay"
tar -xzf "$work"/rrweb-record-*.tgz -C "$work/record"
tar -xzf "$work"/rrweb-replay-*.tgz -C "$work/replay"

cp "$work/record/package/umd/record.min.js" "$OUT/record.min.js"
cp "$work/replay/package/umd/replay.min.js" "$OUT/replay.min.js"
cp "$work/replay/package/dist/style.min.css" "$OUT/replay.min.css"

{
  echo "# Vendored by packaging/vendor-rrweb.sh from the npm registry; do not edit."
  echo "# MIT licence: see LICENSE beside this file."
  echo "package $RECORD $(node -p "require('$work/record/package/package.json').version")"
  echo "package $REPLAY $(node -p "require('$work/replay/package/package.json').version")"
  (cd "$OUT" && sha256sum record.min.js replay.min.js replay.min.css | sed 's/^/sha256 /')
} > "$OUT/VERSIONS"
echo "vendored $RECORD and $REPLAY into $OUT"
