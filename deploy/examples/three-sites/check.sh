#!/bin/sh
# Checks the live three-site deployment from this machine: for every site,
# its router's admin API, clock and UDP buffer limits, a real QUIC tunnel
# and echo to its router and the membership it presents, its router's
# tunnels to the cloud, the cloud's resolver and every capsule server's
# metrics. One line per check (ok, warn or fail, and the fix); exits 1 if
# any check failed, so it can run from cron or a CI job.
#
#   ./check.sh [OUT/ops/sites.yaml] [--json]
set -eu
inv=${1:-out/ops/sites.yaml}
[ $# -gt 0 ] && shift
exec gdp doctor --remote "$inv" "$@"
