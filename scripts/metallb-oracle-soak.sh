#!/usr/bin/env bash
# The differential test against the real MetalLB controllers, longer than CI runs it:
#   scripts/metallb-oracle-soak.sh [SCENARIOS_PER_RELEASE] [SEED]
# Default 200 scenarios per release (about 10 minutes per release on 2 cores) and a random
# seed, printed first; give the seed of a failure to replay it exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
export LB_IP_GUARD_ORACLE_SCENARIOS="${1:-200}"
if [ -n "${2:-}" ]; then export LB_IP_GUARD_ORACLE_SEED="$2"; fi
exec scripts/with-node24 node --test test/e2e/metallb-oracle.test.ts
