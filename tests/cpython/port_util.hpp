// What every CPython port under tests/cpython starts its cases with: a daemon
// child under a given start method (CPython's tests make their Process
// objects daemonic, so a failed case never leaves one behind), and the
// seconds since a point, for CPython's "returned within" checks.
#pragma once

#include <chrono>
#include <utility>

#include <isola/process.hpp>
#include <isola/start_method.hpp>

namespace cpython_port {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline isola::process make(isola::start_method m, auto&&... a) {
  return isola::process(isola::process_options{.daemon = true, .method = m},
                        std::forward<decltype(a)>(a)...);
}

}  // namespace cpython_port
