#!/usr/bin/env bash
# The main job: bring up the local lab (two clusters of two KVM hosts), start the
# manager, register the lab, create and start a VM on each cluster, and show
# them running with their heartbeats, then live-migrate one to the other host of its cluster.  Run it again: it converges, it does not pile up.
set -euo pipefail
cd "$(dirname "$0")/.."
W=.venv/bin/whimbrel
SECONDS=0

$W lab up
$W serve --background
$W lab enroll

ensure_vm() {  # name host pool
  local shown state=absent
  # A VM that does not exist yet (the first run) is "absent", not a parse error.
  if shown=$($W vm show "$1" --json 2>/dev/null); then
    state=$(.venv/bin/python -c 'import json,sys; print(json.loads(sys.argv[1])["state"])' "$shown")
  fi
  case $state in
    running) echo "VM $1 already running on $2" ;;
    absent) $W vm create "$1" --host "$2" --memory 256 --disk-mib 64 --pool "$3" \
              --network vm-net --lab-guest --workload-mib 16 --workload-rate 4 ;;
    missing) $W vm delete "$1" --force
             $W vm create "$1" --host "$2" --memory 256 --disk-mib 64 --pool "$3" \
              --network vm-net --lab-guest --workload-mib 16 --workload-rate 4 ;;
    *) $W vm start "$1" ;;
  esac
}
ensure_vm demo-alpha h1 csv-alpha
ensure_vm demo-beta h3 csv-beta

$W cluster list
$W host list
sleep 4   # let the guests boot (TCG) and count
$W vm list
sleep 2
$W vm list

# A live migration to the other host of cluster alpha: preflight first, then the move.
here=$($W vm show demo-alpha --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["host"])')
there=$([ "$here" = h1 ] && echo h2 || echo h1)
$W vm migrate demo-alpha --to "$there" --check
$W vm migrate demo-alpha --to "$there"
$W vm list
echo "demo done in ${SECONDS} s." \
     "Next: 'whimbrel vm show demo-alpha', 'whimbrel job list', 'whimbrel lab down'."
# The web console: the fleet live, and every action above from a browser.
echo "web console (this machine's token in the link): $($W console)"
