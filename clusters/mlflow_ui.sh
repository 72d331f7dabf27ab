#!/usr/bin/env bash
# Open the cluster's MLflow UI on this laptop:  bash clusters/mlflow_ui.sh clusters/gpu.yaml [local_port]
#
# MLflow listens on the head's private IP only (clusters/start_mlflow.sh), so this keeps an ssh tunnel open
# from 127.0.0.1:<local_port> here (default 5000) to it, through the head; Ctrl-C closes it. Any local port
# works: the server accepts the Host headers localhost:* and 127.0.0.1:*.
set -euo pipefail

cfg="${1:?usage: clusters/mlflow_ui.sh <cluster.yaml> [local_port]}"
port="${2:-5000}"
# `ray` prints progress lines before a command's output: the last line is the answer.
uri="$(ray exec "$cfg" 'cat ~/mlflow/tracking_uri' | tail -n 1)"       # http://<private ip>:5000
[[ "$uri" == http://* ]] || { echo "no tracking URI on the head (is the cluster up?): $uri" >&2; exit 1; }
head="$(ray get-head-ip "$cfg" | tail -n 1)"
# The ssh user and key `ray up` uses: Ray's resolved config, which it cached when `ray exec` ran above (on AWS
# and GCP it names the key pair Ray created; for local.yaml the YAML's own auth).
read -r user key < <(python - "$cfg" <<'EOF' | tail -n 1
import sys, yaml
from ray.autoscaler._private.commands import _bootstrap_config

auth = _bootstrap_config(yaml.safe_load(open(sys.argv[1])))["auth"]
print(auth["ssh_user"], auth["ssh_private_key"])
EOF
)

echo "MLflow UI: http://localhost:$port  (tunnel to ${uri#http://} through $user@$head; Ctrl-C closes it)"
# Ray's own ssh options: cloud heads reuse addresses, so their host keys are not pinned.
exec ssh -i "${key/#\~/$HOME}" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o ExitOnForwardFailure=yes -N -L "127.0.0.1:$port:${uri#http://}" "$user@$head"
