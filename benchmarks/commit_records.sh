#!/usr/bin/env bash
# Commit the campaign's finished work (issue #21): at least hourly while cells run, and at a session's end. Stashes
# the cache's control draws (campaign.py stash), completes the readouts, rebuilds the reports from the records, and
# commits benchmarks/results alone (nothing else that is staged or changed).
#
#     bash benchmarks/commit_records.sh ["message"]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo/benchmarks"
export OMP_NUM_THREADS=1
py="$repo/.venv/bin/python"
"$py" campaign.py stash
"$py" campaign.py readouts > /dev/null  # fills what a worker's older copy left out (a recipe scan's null_arm)
"$py" campaign_report.py > /dev/null
"$py" campaign_readouts.py > /dev/null
"$py" campaign_option_words.py > /dev/null
"$py" exact_pairs_posthoc.py report > /dev/null
progress=$("$py" campaign.py progress)
cd "$repo"
git add benchmarks/results
if git diff --cached --quiet -- benchmarks/results; then
  echo "nothing new: $progress"
  exit 0
fi
git commit -q -m "${1:-campaign: records, reports, stash} ($progress)" -- benchmarks/results
git log --oneline -1
