#!/usr/bin/env bash
# Train shipped models one after another in one CPU "slot" (1 thread), installing each when it finishes.
#   bash scripts/train_queue.sh kpn-medium rdn-small kpn-small-n2v > runs/slotA.out 2>&1 &
set -u
cd "$(dirname "$0")/.."
for name in "$@"; do
  if [ -f "runs/$name/model.safetensors" ]; then
    echo "== $name: already trained"
  else
    resume=""
    [ -f "runs/$name/checkpoint.pt" ] && resume="--resume"
    echo "== $name: training $(date -u +%H:%M)"
    .venv/bin/python scripts/train_shipped.py "$name" --threads 1 $resume > "runs/$name.out" 2>&1 || { echo "== $name failed"; continue; }
  fi
  .venv/bin/python scripts/train_shipped.py "$name" --install && echo "== $name installed $(date -u +%H:%M)"
done
