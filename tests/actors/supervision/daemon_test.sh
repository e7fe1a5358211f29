#!/usr/bin/env bash
# Runs daemon_program and checks Python's exit semantics for supervised
# actors: the non-daemon child finished its job (joined), the daemon child
# did not (terminated), and no child outlived the program.
set -u
prog=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$(timeout 30 "$prog" "$dir" 2>&1); status=$?
echo "$out"
fail=0
[ "$status" -eq 0 ] || { echo "CHECK FAILED: exit status $status"; fail=1; }
[ -f "$dir/worker" ] || { echo "CHECK FAILED: the non-daemon child did not finish its job"; fail=1; }
[ ! -f "$dir/daemon" ] || { echo "CHECK FAILED: the daemon child was not terminated"; fail=1; }
for pid in $(echo "$out" | sed -n 's/^.* pid \([0-9]*\)$/\1/p'); do
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
  if kill -0 "$pid" 2>/dev/null; then echo "CHECK FAILED: child $pid outlived the program"; fail=1; fi
done
[ "$(echo "$out" | grep -c ' pid ')" -eq 2 ] || { echo "CHECK FAILED: the program did not report its children"; fail=1; }
[ "$fail" -eq 0 ] && echo "all checks passed"
exit "$fail"
