#!/usr/bin/env bash
# Installs this build of isola into a scratch prefix, then configures, builds
# and runs a separate project that find_package()s it.
set -euo pipefail
build_dir=$1; source_dir=$2; generator=$3; sanitize=${4:-}
work=$(mktemp -d /tmp/isola-consumer-XXXXXX)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$source_dir" -B "$work/build" -G "$generator" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release \
  ${sanitize:+-DCMAKE_CXX_FLAGS=-fsanitize=$sanitize -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=$sanitize} \
  > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/build/consumer"
