#!/bin/sh
# Guest side of the test bed's negative self-test: says ready, then sends nothing until the host
# is done. The host script expects a reply that never comes, so the scenario must fail.
#   ready-then-wait.sh OUTDIR
: > "$1/ready"
while ! ls "$1" | grep -qx host-done; do sleep 0.1; done
