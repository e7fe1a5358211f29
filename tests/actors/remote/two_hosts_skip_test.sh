#!/usr/bin/env bash
# The two-host test on a machine that allows network namespaces but refuses
# the veth pair must be skipped, not failed, and leave nothing behind.
# Such a machine, for real: the node test runs without CAP_NET_ADMIN (setpriv
# drops it from the bounding set), so as root `ip netns add` still works and
# the kernel refuses `ip link add ... type veth` with EPERM.
# Usage: two_hosts_skip_test.sh <actors_node_test>. Exit 77: this machine
# cannot show the case (not root, no setpriv or ip, or namespaces refused).
set -u
exe=$1
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null || ! command -v ip >/dev/null; then
  echo "needs root, setpriv and ip: not checked"
  exit 77
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
setpriv --bounding-set=-net_admin --inh-caps=-net_admin \
  "$exe" --run_test=two_hosts_suite --log_level=test_suite --report_level=short >"$log" 2>&1 &
pid=$!  # setpriv execs the test: this is the test's pid, in its namespaces' names
wait "$pid"
rc=$?
cat "$log"
left=$(ip netns list | grep -E "^isola_[a-z]*_${pid}( |$)")
if [ -n "$left" ]; then
  echo "CHECK FAILED: namespaces left behind: $left"
  exit 1
fi
if [ "$rc" != 0 ] || ! grep -q "two-host test skipped" "$log"; then
  echo "CHECK FAILED: exit status $rc, or the test was not reported skipped"
  exit 1
fi
if ! grep -q "type veth" "$log"; then
  echo "skipped, but before the veth step (namespaces refused here): the veth case not checked"
  exit 77
fi
echo "all checks passed: skipped at the veth step, nothing left behind"
