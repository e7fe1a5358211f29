#!/usr/bin/env bash
# Installs the dependencies, builds isola and runs the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DISOLA_BUILD_TESTS=OFF -DISOLA_BUILD_BENCH=OFF
cmake --build build -j"$(nproc)" --target example_demo
./build/examples/demo
