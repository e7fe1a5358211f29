#!/usr/bin/env bash
# Installs the dependencies, builds isola with its tests, examples and
# benchmarks, and runs the whole suite: once plainly, once under
# AddressSanitizer + UndefinedBehaviorSanitizer, and the suites that use
# threads (the runtime's threaded suites and the actor layer, whose root runs
# CAF threads, and the layers together in one program) once more under
# ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
# Line tables (-g1) instead of full debug info: enough for sanitizer reports and
# backtraces, and a third less compile time for the test and example programs
# (full -g of Boost.Test and isola's templates dominated the 2-core CI budget).
relflags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG")
dbgflags=(-DCMAKE_CXX_FLAGS_DEBUG="-g1")

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "${relflags[@]}"
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure --timeout 600)

# Under ASan the application scenarios (which run every layer together) but
# not the ~50 short tutorial programs: each costs ~15 s of sanitized code
# generation for library paths the test suites already run under ASan, and
# together they were a third of the 2-core CI budget. They run plainly above.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug "${dbgflags[@]}" -DISOLA_SANITIZE=address,undefined -DISOLA_BUILD_BENCH=OFF \
  -DISOLA_BUILD_TUTORIAL=OFF
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest -j"$jobs" --output-on-failure --timeout 600)

cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug "${dbgflags[@]}" -DISOLA_SANITIZE=thread \
  -DISOLA_BUILD_BENCH=OFF -DISOLA_BUILD_EXAMPLES=OFF
tsan_tests=(runtime_threads_test runtime_lifecycle_test runtime_queue_test runtime_lock_test
  runtime_semaphore_test runtime_event_test runtime_condition_test runtime_barrier_test
  runtime_launcher_test actors_actor_test actors_supervisor_test actors_pool_test
  actors_futures_test actors_node_test combined_layers_test actors_supervisor_suite_test
  cpython_sync_classes_test)
cmake --build build-tsan -j"$jobs" --target "${tsan_tests[@]}" combined_layers_program
# CAF comes uninstrumented; tests/tsan.supp says why its frames are suppressed.
tsan_regex="^($(IFS='|'; echo "${tsan_tests[*]}"))\$"
(cd build-tsan && TSAN_OPTIONS="suppressions=$PWD/../tests/tsan.supp" \
  ctest -j"$jobs" --output-on-failure --timeout 600 -R "$tsan_regex")
