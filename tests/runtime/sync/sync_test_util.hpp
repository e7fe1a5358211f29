// Helpers shared by the suites of the sync objects (runtime_lock_test,
// runtime_semaphore_test, runtime_event_test, runtime_condition_test,
// runtime_barrier_test). Objects go to children as process arguments under
// every start method; nothing sleeps to "let things settle": the parent
// waits on events, counts and exit codes, each with a deadline.
#pragma once

#include <boost/test/unit_test.hpp>

#include <isola/process.hpp>
#include <isola/value.hpp>

#include <chrono>
#include <vector>

#include "test_util.hpp"

namespace isola_sync_test {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

inline double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

inline isola::process_options with(isola::start_method m) { return {.method = m}; }

inline void join_all(std::vector<isola::process>& ps) {
  for (auto& p : ps) BOOST_TEST(p.join(60s));
}

}  // namespace isola_sync_test
