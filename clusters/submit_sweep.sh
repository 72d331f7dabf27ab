#!/usr/bin/env bash
# Runs ON the head node (clusters/sweep.sh submit calls it through `ray exec`): submit
# `python -m infnet.tune <overrides>` as a Ray job, without waiting for it. Right after `ray up`, the head's job
# server answers before its job agent has registered ("No available agent to submit job, please try again
# later"): that answer is retried every 5 s, INFNET_SUBMIT_TRIES times (60: five minutes); any other failure
# ends the script at once with Ray's message. The job server is $RAY_ADDRESS (default: this head's dashboard).
#
#   bash clusters/submit_sweep.sh tune.address=auto tracking.uri=http://10.0.0.1:5000 tune.storage_path=s3://b/sweeps
set -uo pipefail

tries="${INFNET_SUBMIT_TRIES:-60}"
for ((try = 1; try <= tries; try++)); do
  if out=$(ray job submit --no-wait -- python -m infnet.tune "$@" 2>&1); then
    echo "$out"
    exit 0
  fi
  if ! grep -q "No available agent" <<<"$out"; then
    echo "$out" >&2
    exit 1
  fi
  echo "submit_sweep.sh: the head's job agent is not registered yet (try $try of $tries); retrying in 5 s" >&2
  sleep 5
done
echo "$out" >&2
exit 1
