#!/bin/sh
# npm run build: dist/ from nothing, so files moved or removed in src/ leave nothing behind in the
# published package; the command's entry point stays executable for npx and the kubectl-style bin.
set -eu
cd "$(dirname "$0")/.."
rm -rf dist
tsc -p tsconfig.build.json
chmod +x dist/cli/main.js dist/cli/kubectl-plugin.js
