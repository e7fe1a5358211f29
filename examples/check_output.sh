#!/usr/bin/env bash
# check_output.sh — runs one example and checks what it printed.
#
#   check_output.sh [CHECK ...] -- PROGRAM [ARG ...]
#   check_output.sh --checks-file FILE [CHECK ...] -- PROGRAM [ARG ...]
#
# The program's stdout and stderr are captured together through one pipe, so
# the capture ends only when every process holding the pipe has gone: a child
# that outlives the program (an orphan) makes the test wait and time out.
# Regular expressions are bash (POSIX extended) expressions matched against
# each line of the output.
#
# CHECKs, all of which must hold:
#   --status N          the program's exit status is N (default 0)
#   --count N RE        exactly N lines match RE
#   --expect RE         at least one line matches RE
#   --line N RE         line N (counting from 1) matches RE
#   --reject RE         no line matches RE
#   --before RE1 RE2    the first line matching RE1 comes before the first
#                       line matching RE2 (both must exist)
#   --capture VAR RE    VAR := group 1 of the first line matching RE
#   --same VAR1 VAR2    the captured values are equal
#   --differ VAR1 VAR2  the captured values differ
#   --gone VAR          no process with the captured pid VAR exists once the
#                       program has ended (waits up to 2 s for it to go)
#   --max-seconds S     the program (and its children) ended within S seconds
#   --min-seconds S     the program ran at least S seconds
#
# A checks file (an example's <name>.expect) holds CHECKs in this form, so
# that a regular expression needs no quoting at all: a line starting with
# "--" is an option and its plain arguments (numbers, names), split on
# spaces; any other line is one argument, a regular expression, taken whole
# after its leading spaces (write a space at either end as [ ]). Blank lines
# and lines starting with # are skipped.
#
#   --count 1
#     ^父进程pid: [0-9]+$
#   --before
#     ^父进程pid:
#     ^唱歌进程pid:
#   --same sing p1
set -u

# Appends the CHECKs of the checks file $1 to `checks`.
read_checks_file() {
  local line words
  if [[ ! -r $1 ]]; then
    echo "check_output.sh: cannot read checks file $1" >&2
    exit 2
  fi
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^[[:space:]]*(#|$) ]]; then
      continue
    elif [[ $line == --* ]]; then
      read -r -a words <<<"$line"
      checks+=("${words[@]}")
    else
      checks+=("${line#"${line%%[![:space:]]*}"}")
    fi
  done <"$1"
}

checks=()
while (($#)); do
  if [[ $1 == -- ]]; then
    shift
    break
  elif [[ $1 == --checks-file ]]; then
    (($# >= 2)) || { echo "check_output.sh: --checks-file needs a file" >&2; exit 2; }
    read_checks_file "$2"
    shift 2
    continue
  fi
  checks+=("$1")
  shift
done
if [[ ${CHECK_OUTPUT_PRINT_CHECKS:-} == 1 ]]; then  # for comparing checks files
  printf '%s\n' "${checks[@]}"
  exit 0
fi
if (($# == 0)); then
  echo "usage: check_output.sh [CHECK ...] -- PROGRAM [ARG ...]" >&2
  exit 2
fi

t0=$(date +%s%N)
output=$("$@" 2>&1)
status=$?
t1=$(date +%s%N)
elapsed_ms=$(((t1 - t0) / 1000000))

echo "----- output of: $* -----"
printf '%s\n' "$output"
echo "----- exit status $status, ${elapsed_ms} ms -----"

mapfile -t lines <<<"$output"
declare -A captured=()
failures=0
expected_status=0

fail() {
  echo "CHECK FAILED: $*"
  failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

# Sets `found` to the index of the first line matching $1 (-1 if none) and
# `groups` to that match's groups.
first_match() {
  local re=$1 i
  found=-1
  groups=()
  for i in "${!lines[@]}"; do
    if [[ ${lines[i]} =~ $re ]]; then
      found=$i
      groups=("${BASH_REMATCH[@]}")
      return 0
    fi
  done
  return 1
}

count_matches() {
  local re=$1 l n=0
  for l in "${lines[@]}"; do
    [[ $l =~ $re ]] && n=$((n + 1))
  done
  echo "$n"
}

need() {  # need N OPTION: the option takes N arguments
  if ((${#checks[@]} - i - 1 < $1)); then
    echo "check_output.sh: $2 needs $1 argument(s)" >&2
    exit 2
  fi
}

i=0
while ((i < ${#checks[@]})); do
  opt=${checks[i]}
  case $opt in
    --status)
      need 1 "$opt"
      expected_status=${checks[i + 1]}
      i=$((i + 2))
      ;;
    --count)
      need 2 "$opt"
      n=${checks[i + 1]} re=${checks[i + 2]}
      got=$(count_matches "$re")
      if ((got == n)); then ok "$n line(s) match /$re/"; else fail "$got line(s) match /$re/, expected $n"; fi
      i=$((i + 3))
      ;;
    --expect)
      need 1 "$opt"
      re=${checks[i + 1]}
      if first_match "$re"; then ok "a line matches /$re/"; else fail "no line matches /$re/"; fi
      i=$((i + 2))
      ;;
    --line)
      need 2 "$opt"
      n=${checks[i + 1]} re=${checks[i + 2]}
      if ((n >= 1 && n <= ${#lines[@]})) && [[ ${lines[n - 1]} =~ $re ]]; then
        ok "line $n matches /$re/"
      else
        fail "line $n (${lines[n - 1]:-<none>}) does not match /$re/"
      fi
      i=$((i + 3))
      ;;
    --reject)
      need 1 "$opt"
      re=${checks[i + 1]}
      if first_match "$re"; then fail "line $((found + 1)) matches /$re/ but must not: ${lines[found]}"; else ok "no line matches /$re/"; fi
      i=$((i + 2))
      ;;
    --before)
      need 2 "$opt"
      re1=${checks[i + 1]} re2=${checks[i + 2]}
      if ! first_match "$re1"; then
        fail "no line matches /$re1/"
      else
        a=$found
        if ! first_match "$re2"; then
          fail "no line matches /$re2/"
        elif ((a < found)); then
          ok "/$re1/ (line $((a + 1))) comes before /$re2/ (line $((found + 1)))"
        else
          fail "/$re1/ (line $((a + 1))) does not come before /$re2/ (line $((found + 1)))"
        fi
      fi
      i=$((i + 3))
      ;;
    --capture)
      need 2 "$opt"
      var=${checks[i + 1]} re=${checks[i + 2]}
      if first_match "$re" && ((${#groups[@]} > 1)); then
        captured[$var]=${groups[1]}
        ok "$var = ${groups[1]}"
      else
        fail "cannot capture $var: no line matches /$re/ (with a group)"
      fi
      i=$((i + 3))
      ;;
    --same | --differ)
      need 2 "$opt"
      a=${checks[i + 1]} b=${checks[i + 2]}
      if [[ -z ${captured[$a]+x} || -z ${captured[$b]+x} ]]; then
        fail "$opt $a $b: not both captured"
      elif [[ $opt == --same && ${captured[$a]} == "${captured[$b]}" ]]; then
        ok "$a == $b (${captured[$a]})"
      elif [[ $opt == --differ && ${captured[$a]} != "${captured[$b]}" ]]; then
        ok "$a (${captured[$a]}) != $b (${captured[$b]})"
      else
        fail "$opt $a $b: ${captured[$a]} vs ${captured[$b]}"
      fi
      i=$((i + 3))
      ;;
    --gone)
      need 1 "$opt"
      var=${checks[i + 1]}
      if [[ -z ${captured[$var]+x} ]]; then
        fail "--gone $var: not captured"
      else
        pid=${captured[$var]}
        for _ in $(seq 40); do
          kill -0 "$pid" 2>/dev/null || break
          sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then fail "process $pid ($var) still exists"; else ok "process $pid ($var) is gone"; fi
      fi
      i=$((i + 2))
      ;;
    --max-seconds)
      need 1 "$opt"
      s=${checks[i + 1]}
      limit_ms=$(awk -v s="$s" 'BEGIN { printf "%d", s * 1000 }')
      if ((elapsed_ms <= limit_ms)); then ok "ended in ${elapsed_ms} ms <= ${s} s"; else fail "took ${elapsed_ms} ms > ${s} s"; fi
      i=$((i + 2))
      ;;
    --min-seconds)
      need 1 "$opt"
      s=${checks[i + 1]}
      limit_ms=$(awk -v s="$s" 'BEGIN { printf "%d", s * 1000 }')
      if ((elapsed_ms >= limit_ms)); then ok "ran ${elapsed_ms} ms >= ${s} s"; else fail "took only ${elapsed_ms} ms < ${s} s"; fi
      i=$((i + 2))
      ;;
    *)
      echo "check_output.sh: unknown check '$opt'" >&2
      exit 2
      ;;
  esac
done

if ((status == expected_status)); then ok "exit status $status"; else fail "exit status $status, expected $expected_status"; fi

if ((failures > 0)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
