#!/usr/bin/env bash
# Submit, follow and stop sweeps on a `ray up` cluster, and ship code changes, without touching what runs.
#
#   bash clusters/sweep.sh <cluster.yaml> submit <overrides...>   # python -m infnet.tune as a Ray job on the head
#   bash clusters/sweep.sh <cluster.yaml> logs <job id>           # follow its output (Ctrl-C stops following only)
#   bash clusters/sweep.sh <cluster.yaml> list                    # jobs and their status
#   bash clusters/sweep.sh <cluster.yaml> stop <job id>           # stop a sweep (resume it later with tune.resume=...)
#   bash clusters/sweep.sh <cluster.yaml> ship                    # rsync this checkout to every node
#
# A sweep submitted as a Ray job runs on the head under Ray's job supervisor: closing the terminal or the ssh
# session does not stop it. It joins the cluster (tune.address=auto) and logs to the head's MLflow server
# (tracking.uri from ~/mlflow/tracking_uri); pass tune.storage_path=s3://... and tune.name=... yourself.
# `ship` syncs the code (file_mounts) to the head and every running worker and restarts nothing: Ray, the MLflow
# server and running sweeps go on (trials already running keep the code they imported; new trials and new
# workers get the new code). Re-running `ray up` instead re-runs the start commands, which restart Ray and so
# end a running sweep (resume it with tune.resume=<its storage folder>).
set -euo pipefail

cfg="${1:?usage: clusters/sweep.sh <cluster.yaml> submit|logs|list|stop|ship [args]}"
action="${2:?usage: clusters/sweep.sh <cluster.yaml> submit|logs|list|stop|ship [args]}"
shift 2
case "$action" in
  submit)
    # Quoted once for the head's shell, which expands \$(cat ...) there at submission. submit_sweep.sh retries
    # while the head's job agent registers (right after `ray up`).
    ray exec "$cfg" "bash ~/infnet/clusters/submit_sweep.sh tune.address=auto \
tracking.uri=\$(cat ~/mlflow/tracking_uri)$(printf ' %q' "$@")"
    ;;
  logs) ray exec "$cfg" "ray job logs --follow ${1:?job id}" ;;
  list) ray exec "$cfg" "ray job list" ;;
  stop) ray exec "$cfg" "ray job stop ${1:?job id}" ;;
  ship) ray rsync-up "$cfg" --all-nodes ;;
  *) echo "unknown action $action (submit|logs|list|stop|ship)" >&2; exit 2 ;;
esac
