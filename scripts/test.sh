#!/usr/bin/env bash
# Installs the dependencies, builds isola with its tests, examples and
# benchmarks, and runs the whole suite: once plainly, once under
# AddressSanitizer + UndefinedBehaviorSanitizer, and the suites that use
# threads once more under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure --timeout 600)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DISOLA_SANITIZE=address,undefined -DISOLA_BUILD_BENCH=OFF
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest -j"$jobs" --output-on-failure --timeout 600)

cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DISOLA_SANITIZE=thread \
  -DISOLA_BUILD_BENCH=OFF -DISOLA_BUILD_EXAMPLES=OFF
cmake --build build-tsan -j"$jobs" --target runtime_threads_test runtime_lifecycle_test runtime_queue_test
(cd build-tsan && ctest -j"$jobs" --output-on-failure --timeout 600 -R 'runtime_(threads|lifecycle|queue)_test')
