#!/usr/bin/env bash
# The main job, end to end on the local cluster: start it, create a DevServer and wait for it, run a command
# in it, list, create a 2-rank distributed one and run a command on rank 1, delete both, stop the cluster.
#
#   examples/main_job.sh                 # after: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'
#   examples/main_job.sh --kubernetes    # the same on a real control plane (devctl local up --kubernetes)
#
# It never touches your ~/.kube/config: unless KUBECONFIG is set, the local context goes into a kubeconfig
# in the state directory (DEVSERVERS_STATE_DIR, default ~/.local/state/devservers/local). Safe to run
# twice; exits non-zero at the first failure (the cluster then stays up for a look: devctl local status).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
if [ -x "$(dirname "$python")/devctl" ]; then
  devctl=("$(dirname "$python")/devctl")
else  # not installed as a console script (yet): run the package from this checkout
  devctl=("$python" -m devservers_cli)
  export PYTHONPATH="$repo/cli:$repo${PYTHONPATH:+:$PYTHONPATH}"
fi
export DEVSERVERS_STATE_DIR="${DEVSERVERS_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/devservers/local}"
export KUBECONFIG="${KUBECONFIG:-$DEVSERVERS_STATE_DIR/user.kubeconfig}"

step() { printf '\n$ devctl %s\n' "$*"; "${devctl[@]}" "$@"; }
expect() {  # expect WHAT ACTUAL WANTED
  if [ "$2" != "$3" ]; then echo "main job: $1 printed '$2', expected '$3'" >&2; exit 1; fi
}

step local up "$@"

# Left over by an earlier run that stopped half-way: start from a clean slate.
for name in mydev ddp; do
  if "${devctl[@]}" list -o name | grep -qx "devserver.devservers.io/$name"; then
    step delete "$name" --yes --wait
  fi
done

step create mydev --flavor cpu-small --time 1h --wait
printf '\n$ devctl shell mydev -- python -c "import platform; print(platform.node())"\n'
node="$("${devctl[@]}" shell mydev -- python -c "import platform; print(platform.node())")"
echo "$node"
expect "the command in mydev" "$node" "mydev-0"

step list

step create ddp --flavor cpu-small --time 1h --distributed --world-size 2 --nprocs-per-node 1 --backend gloo --wait
printf '\n$ devctl shell ddp --rank 1 -- python -c "..."\n'
rank="$("${devctl[@]}" shell ddp --rank 1 -- python -c \
  "import os, platform; print(platform.node(), os.environ['PET_NODE_RANK'], os.environ['PET_NNODES'])")"
echo "$rank"
expect "the command on rank 1 of ddp" "$rank" "ddp-1 1 2"

step list
step delete mydev ddp --yes --wait
step local down
echo
echo "main job: done"
