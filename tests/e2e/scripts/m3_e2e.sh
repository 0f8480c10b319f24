#!/usr/bin/env bash
# The spec's M3 E2E test (shared/spec/milestone-3-training-integration.md), as a script.
# Waits with `ktrdr agent status` where the spec says "Wait for training to complete".
set -euo pipefail

ktrdr agent trigger
for _ in $(seq 1 240); do
    if ktrdr agent status | grep -q "^Status: idle"; then break; fi
    if ktrdr agent status | grep -q "^Phase: backtesting"; then break; fi
    sleep 1
done

ktrdr agent status
ktrdr operations list --type training
OP_ID=$(ktrdr operations list --type agent_research --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["operation_id"])')
ktrdr operations status "$OP_ID"
