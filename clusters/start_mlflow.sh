#!/usr/bin/env bash
# Start the sweep's MLflow tracking server on the Ray head node; run by head_start_ray_commands.
#
# The server binds to the head's private IP only: workers log to it there, a laptop reaches it through
# an ssh tunnel (clusters/mlflow_ui.sh), no public port is ever opened. MLflow 3 rejects requests whose
# Host header it does not know (403): --allowed-hosts names that address (the workers') and localhost /
# 127.0.0.1 on any port (the tunnel's local end, whichever local port it uses).
#
# Re-running `ray up` re-runs this script while a sweep may be logging to the server: a healthy server
# started with the same settings is left alone; it is restarted only if the settings changed or it does
# not answer.
#
# Environment (set on the command line in the cluster YAML):
#   MLFLOW_BACKEND_STORE_URI       required: where runs live, e.g. postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow
#                                  (the cloud YAMLs; +psycopg2: SQLAlchemy >= 2.1 would otherwise want
#                                  psycopg 3) or sqlite:///$HOME/mlflow/mlflow.db
#   MLFLOW_ARTIFACTS_DESTINATION   required: where artifacts live, e.g. s3://bucket/infnet/mlflow (proxied by
#                                  the server: only the head needs access, through its instance role)
#   MLFLOW_PORT                    5000
#   INFNET_HEAD_IP                 the address to bind (default: the IP Ray registers for this node)
#   INFNET_MLFLOW_DIR              ~/mlflow: server.log, server.pid, server.settings and tracking_uri (the URI
#                                  for sweeps: python -m infnet.tune tracking.uri=$(cat ~/mlflow/tracking_uri) ...)
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

args=(--backend-store-uri "$MLFLOW_BACKEND_STORE_URI" --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION"
      --host "$ip" --port "$port" --allowed-hosts "$ip:$port,localhost,localhost:*,127.0.0.1,127.0.0.1:*" "$@")
# A digest, not the settings themselves: the store URI may hold a password.
settings="$(printf '%q ' "${args[@]}" "$MLFLOW_SERVER_ENABLE_JOB_EXECUTION" | sha256sum | cut -d' ' -f1)"

healthy() {  # /health answers 200 within 3 tries of 10 s (a loaded head answers slowly, not never)
  python - "$uri" <<'EOF'
import sys, time, urllib.request

for _ in range(3):
    try:
        sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/health", timeout=10).status == 200 else 1)
    except OSError:
        time.sleep(1)
sys.exit(1)
EOF
}

old="$(cat "$dir/server.pid" 2>/dev/null || true)"
running() { [[ -n "$old" ]] && grep -qs mlflow "/proc/$old/cmdline"; }  # (a zombie's cmdline is empty)
if running; then
  if [[ "$settings" == "$(cat "$dir/server.settings" 2>/dev/null)" ]] && healthy; then
    echo "$uri" > "$dir/tracking_uri"
    echo "MLflow tracking server at $uri: already running (pid $old), left alone"
    exit 0
  fi
  # SIGTERM lets the server finish its requests and stop its workers; whatever still runs after 30 s
  # (a hung server) is killed with its whole process group.
  kill "$old" 2>/dev/null || true
  for _ in $(seq 60); do running || break; sleep 0.5; done
  if running; then kill -KILL -- "-$old" 2>/dev/null || kill -KILL "$old"; fi
fi

# In its own session: whatever ends the session of the `ray up` that started it (SIGHUP, a group kill)
# does not reach it, and a restart stops the server with its workers by process group.
setsid nohup mlflow server "${args[@]}" > "$dir/server.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$dir/server.pid"
echo "$settings" > "$dir/server.settings"
echo "$uri" > "$dir/tracking_uri"

# Fail `ray up` loudly if the server does not come up (a wrong store URI, a missing database driver).
python - "$uri" "$pid" "$dir/server.log" <<'EOF'
import sys, time, urllib.request

uri, pid, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for _ in range(90):
    try:
        urllib.request.urlopen(uri + "/health", timeout=2)
        print("MLflow tracking server at", uri)
        sys.exit(0)
    except OSError:
        try:  # exited? (then a zombie until this script ends, with an empty cmdline)
            if not open(f"/proc/{pid}/cmdline").read():
                break
        except FileNotFoundError:
            break
        time.sleep(2)
sys.exit(f"MLflow did not come up at {uri}; the end of {log}:\n" + open(log).read()[-2000:])
EOF
