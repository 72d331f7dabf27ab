#!/usr/bin/env bash
# (Re)start the sweep's MLflow tracking server on the Ray head node; run by head_start_ray_commands.
#
# The server binds to the head's private IP only: workers log to it there, a laptop reaches it through
# an ssh tunnel (clusters/README.md), no public port is ever opened. MLflow 3 rejects requests whose
# Host header it does not know (403), so --allowed-hosts names exactly that address and the tunnel's.
#
# Environment (set on the command line in the cluster YAML):
#   MLFLOW_BACKEND_STORE_URI       required: where runs live, e.g. sqlite:////home/ray/mlflow/mlflow.db or
#                                  postgresql://mlflow@db-host:5432/mlflow (password in ~/.pgpass, not here)
#   MLFLOW_ARTIFACTS_DESTINATION   required: where artifacts live, e.g. s3://bucket/infnet/mlflow (proxied by
#                                  the server: only the head needs access, through its instance role)
#   MLFLOW_PORT                    5000
#   INFNET_HEAD_IP                 the address to bind (default: the IP Ray registers for this node)
#   INFNET_MLFLOW_DIR              ~/mlflow: server.log, server.pid and tracking_uri (the URI for sweeps:
#                                  python -m infnet.tune tracking.uri=$(cat ~/mlflow/tracking_uri) ...)
# Arguments are passed on to `mlflow server` (e.g. --workers 2).
set -euo pipefail

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI in the cluster YAML}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION in the cluster YAML}"
port="${MLFLOW_PORT:-5000}"
ip="${INFNET_HEAD_IP:-$(python -c 'import ray.util; print(ray.util.get_node_ip_address())')}"
dir="${INFNET_MLFLOW_DIR:-$HOME/mlflow}"
uri="http://$ip:$port"
mkdir -p "$dir"
# MLflow's job runner (GenAI scorers, trace roll-ups) is not used by sweeps: spare the head its processes.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

old="$(cat "$dir/server.pid" 2>/dev/null || true)"
if [[ -n "$old" ]] && grep -qs mlflow "/proc/$old/cmdline"; then  # a server of an earlier `ray up`
  kill "$old" 2>/dev/null || true
  sleep 2
fi
nohup mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host "$ip" --port "$port" \
  --allowed-hosts "$ip:$port,localhost:$port,127.0.0.1:$port" "$@" \
  > "$dir/server.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$dir/server.pid"
echo "$uri" > "$dir/tracking_uri"

# Fail `ray up` loudly if the server does not come up (a wrong store URI, a missing database driver).
python - "$uri" "$pid" "$dir/server.log" <<'EOF'
import os, sys, time, urllib.request

uri, pid, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for _ in range(90):
    try:
        urllib.request.urlopen(uri + "/health", timeout=2)
        print("MLflow tracking server at", uri)
        sys.exit(0)
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(2)
sys.exit(f"MLflow did not come up at {uri}; the end of {log}:\n" + open(log).read()[-2000:])
EOF
