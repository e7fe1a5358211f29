// isola/wait.hpp — wait on several things at once
// (Python's multiprocessing.connection.wait).
//
//   auto ready = isola::wait({left, q, p}, 1s);   // indices of the ready ones
//
// A connection is ready when a message can be received (or its peer closed:
// recv() then throws eof_error at once), a process when it has ended, a
// queue when get() would not block (or it was closed).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <vector>

namespace isola {

class connection;
class process;

/// Something wait() can wait on: a descriptor that becomes readable, and an
/// optional check for readiness the descriptor cannot show (buffered data).
class waitable {
 public:
  waitable(const connection& c);  // NOLINT: implicit, so wait({a, b}) reads well
  waitable(const process& p);     // NOLINT
  /// Anything with a wait_handle() (queues).
  template <class T>
  requires requires(const T& t) {
    { t.wait_handle() } -> std::same_as<waitable>;
  }
  waitable(const T& t) : waitable(t.wait_handle()) {}  // NOLINT
  /// A descriptor; ready_now, if given, is asked first and before every sleep.
  /// With confirm, the descriptor being readable counts only if ready_now()
  /// then says so (a notification fd that may be stale); ready_now must then
  /// also drain the descriptor when it returns false.
  explicit waitable(int fd, std::function<bool()> ready_now = {}, bool confirm = false)
      : fd_(fd), ready_now_(std::move(ready_now)), confirm_(confirm && ready_now_) {}

  int fd() const noexcept { return fd_; }
  bool ready_now() const { return ready_now_ && ready_now_(); }
  bool confirm() const noexcept { return confirm_; }

 private:
  int fd_;
  std::function<bool()> ready_now_;
  bool confirm_ = false;
};

/// Indices of the objects that are ready, waiting at most timeout
/// (std::nullopt: until one is). Empty on timeout.
std::vector<std::size_t> wait(std::span<const waitable> objects,
                              std::optional<std::chrono::duration<double>> timeout = std::nullopt);
std::vector<std::size_t> wait(std::initializer_list<waitable> objects,
                              std::optional<std::chrono::duration<double>> timeout = std::nullopt);

}  // namespace isola
