#!/usr/bin/env bash
# Start the campaign's background work (issue #21) from a frozen copy of HEAD, so that editing the checkout never
# touches a running cell: WORKERS workers (default 3) that take unclaimed decoy, then development, then held-out
# cells (claims keep them apart; each cell runs in a process of its own), kept at that number by a keeper loop.
# Records are written through a link into the checkout's benchmarks/results. Logs: $LOGS (default /tmp/camp).
# At a session's end: campaign.py stash, then commit benchmarks/results (the cache does not outlive a machine).
#
#     bash benchmarks/start_campaign.sh [WORKERS]      # then: .venv/bin/python benchmarks/campaign.py progress
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
workers=${1:-3}
src=${CAMPAIGN_SRC:-/tmp/camp-src}
logs=${LOGS:-/tmp/camp}
py="$repo/.venv/bin/python"
mkdir -p "$logs"
rm -rf "$src" && mkdir -p "$src"
git -C "$repo" archive HEAD auditor benchmarks examples | tar -x -C "$src"
rm -rf "$src/benchmarks/results" && ln -s "$repo/benchmarks/results" "$src/benchmarks/results"
# a fresh machine: the control draws and log-probabilities the last session stashed (campaign.py stash) go back
(cd "$src/benchmarks" && OMP_NUM_THREADS=1 PYTHONPATH="$src" "$py" campaign.py unstash)
cat > "$logs/keeper.sh" <<KEEPER
#!/usr/bin/env bash
cd "$src/benchmarks"
export OMP_NUM_THREADS=1 PYTHONPATH="$src"
while true; do
  # workers, and cells still running whose worker is gone (a handover to a new frozen copy leaves them orphaned)
  n=\$(( \$(pgrep -fc "^$py campaign.py run" || true) + \$(pgrep -P 1 -fc "campaign.py cell" || true) ))
  if [ "\$n" -lt "$workers" ]; then
    echo "\$(date -u +%H:%M) starting a worker (\$n running)" >> "$logs/keeper.log"
    nohup bash -c "$py campaign.py run --split profile; $py campaign.py run --split dev; $py campaign.py run --split heldout" >> "$logs/workers.log" 2>&1 &
    sleep 120  # a new worker's first claim comes after its imports
  fi
  sleep 60
done
KEEPER
chmod +x "$logs/keeper.sh"
pkill -f "^bash $logs/keeper.sh" || true
nohup bash "$logs/keeper.sh" > /dev/null 2>&1 &
echo "frozen copy of $(git -C "$repo" rev-parse --short HEAD) in $src; keeper keeps $workers workers; logs in $logs"
