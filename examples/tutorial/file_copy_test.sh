#!/usr/bin/env bash
# file_copy_test.sh — the ctest of the file_copy example.
#
#   file_copy_test.sh PROGRAM SECONDS METHOD
#
# Makes a temporary directory of files of varied sizes (empty, one byte,
# around the 4096-byte block, about 1 MB and more, names with spaces and
# Chinese), plus a sub-directory that must not be copied; runs
# `PROGRAM <dir> SECONDS METHOD` through check_output.sh; then checks that
# "<dir>-备份" holds exactly the same files (diff -r, cmp) and that the
# progress line went up once per file, never down, to 100%. Runs the program
# a second time to check that an existing backup directory is an error, as
# os.mkdir makes it in the seed. Prints "all checks passed" or
# "CHECK FAILED: ...", like check_output.sh.
set -u

program=$1 seconds=$2 method=$3
here=$(cd "$(dirname "$0")" && pwd)
failures=0
fail() {
  echo "CHECK FAILED: $*"
  failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/isola_file_copy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src=$tmp/源目录
dest=$src-备份
mkdir "$src" "$src/子目录"
: >"$src/empty.txt"
printf x >"$src/one_byte"
head -c 4095 /dev/urandom >"$src/block-1.bin"
head -c 4096 /dev/urandom >"$src/block.bin"
head -c 4097 /dev/urandom >"$src/block+1.bin"
head -c 100000 /dev/urandom >"$src/100k.bin"
head -c 1048576 /dev/urandom >"$src/1M.bin"
head -c 1000003 /dev/urandom >"$src/文件 名.dat"
head -c 1572864 /dev/urandom >"$src/1.5M.bin"
seq 1 20000 >"$src/numbers.txt"
echo "not copied" >"$src/子目录/nested.txt"
nfiles=10

# 1. The copy. Its output is one line of '\r'-separated progress reports,
# the last one 100%.
out=$(bash "$here/../check_output.sh" \
  --count 1 "当前进度为100%$" \
  --count 1 "." \
  --reject "rror|what\\(\\)|exception" \
  --max-seconds 60 \
  -- "$program" "$src" "$seconds" "$method")
printf '%s\n' "$out"
if [[ $out == *"all checks passed"* ]]; then ok "check_output.sh"; else fail "check_output.sh"; fi

# 2. The backup equals the source (regular files only, no sub-directory).
if [[ -d $dest ]]; then ok "$dest exists"; else fail "$dest does not exist"; fi
if diff -r -x 子目录 "$src" "$dest"; then ok "diff -r: same files"; else fail "diff -r: the copy differs"; fi
for f in "$src"/*; do
  [[ -f $f ]] || continue
  name=$(basename "$f")
  if cmp -s "$f" "$dest/$name"; then ok "cmp $name"; else fail "cmp $name: differs or missing"; fi
done
copied=$(find "$dest" -mindepth 1 | wc -l)
if ((copied == nfiles)); then ok "$copied entries in the backup"; else fail "$copied entries in the backup, expected $nfiles"; fi

# 3. The progress: one report per file, each the seed's %d of 100*count/n,
# so never going down, ending at 100%.
progress=$(printf '%s\n' "$out" | sed -n '/^----- output of:/,/^----- exit status/p' | sed '1d;$d' |
  tr '\r' '\n' | grep -o '当前进度为[0-9]*%' | sed 's/[^0-9]//g')
mapfile -t pct <<<"$progress"
if ((${#pct[@]} == nfiles)); then ok "${#pct[@]} progress reports"; else fail "${#pct[@]} progress reports, expected $nfiles"; fi
expected=()
for ((k = 1; k <= nfiles; k++)); do expected+=($((100 * k / nfiles))); done
if [[ "${pct[*]}" == "${expected[*]}" ]]; then ok "progress ${pct[*]}"; else fail "progress '${pct[*]}', expected '${expected[*]}'"; fi

# 4. Again: the backup directory exists, so nothing is copied (Python prints
# os.mkdir's FileExistsError).
out=$(bash "$here/../check_output.sh" \
  --count 1 "备份.*[Ff]ile exists|[Ff]ile exists.*备份" \
  --reject "当前进度" \
  -- "$program" "$src" "$seconds" "$method")
printf '%s\n' "$out"
if [[ $out == *"all checks passed"* ]]; then ok "second run: the backup directory exists"; else fail "second run"; fi

if ((failures > 0)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
