#!/usr/bin/env bash
# The fuzz suite against the real server (test/server/fuzz.test.ts), longer than CI runs it:
#   scripts/fuzz.sh [REQUESTS] [SEED]
# Default 100,000 requests and a random seed, printed with the result (and by fast-check in a
# failure); give the seed of a failure, with the same number of requests, to replay it exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
export LB_IP_GUARD_FUZZ_RUNS="${1:-100000}"
if [ -n "${2:-}" ]; then export LB_IP_GUARD_FUZZ_SEED="$2"; fi
exec scripts/with-node24 node --test test/server/fuzz.test.ts
