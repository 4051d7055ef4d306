#!/bin/sh
# The entry of the pre-commit hook (.pre-commit-hooks.yaml): `lb-ip-guard check` from the copy of
# this repository that pre-commit keeps, run from its TypeScript sources by the Node.js on PATH
# (22.18 or newer strips the types), as the GitHub Action runs it. Its runtime dependencies are
# installed there on the first run, and again when the lockfile changed; nothing is built.
set -eu
here="$(cd "$(dirname "$0")/.." && pwd)"
if ! node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 22 || (major === 22 && minor >= 18) ? 0 : 1)' 2>/dev/null; then
  echo "lb-ip-guard pre-commit hook: needs Node.js 22.18 or newer on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 2
fi
if [ ! -f "$here/node_modules/.package-lock.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
fi
exec node "$here/src/cli/main.ts" check "$@"
