#!/bin/sh
# join-ray COMMAND...: join the Ray cluster at $RAY_ADDRESS as a node that offers no CPUs and no GPUs
# (nothing is scheduled here), then exec COMMAND (e.g. `salient serve ...`), which becomes a Ray driver.
#
# Why: a driver that connects by the GCS address (`head:6379`) must run on a node of the cluster
# (Ray looks for a local raylet; ray/_private/services.py get_node_to_connect_for_driver). This is
# the topology of tests/attribution_worker/test_two_node.py, where the driver shares a machine with
# a raylet. Without RAY_ADDRESS, or with a Ray Client address (ray://...), COMMAND runs as is.
# Token auth: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN must be set here as on every node.
# RAY_START_ARGS: more `ray start` flags, split on spaces (e.g. fixed ports behind a firewall:
# "--node-manager-port=6380 --dashboard-agent-listen-port=52365").
set -eu
case "${RAY_ADDRESS:-}" in
  ""|ray://*) ;;
  *) ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats ${RAY_START_ARGS:-} ;;
esac
exec "$@"
