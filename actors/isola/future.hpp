// isola/future.hpp — the result of work done in another process: a request
// to an actor, a task in a pool.
//
//   isola::future<int> f = parser.request<int>(parse{"1+2"});
//   if (f.wait(100ms)) use(f.get());        // get() rethrows the remote failure
//
// A future is completed once, by whoever produces the result: a value, or an
// exception (remote_error, actor_exited, worker_died, timeout_error for a
// request's own deadline, ...). get() returns the value (a copy: get may be
// called again) or rethrows the exception; get(t) throws timeout_error when
// the result is not there within t, and the result is not lost for a later
// get. Copies share the result. Futures are thread-safe.
//
// Waiting for a request's reply reads the calling thread's inbox (there is no
// background thread): replies to other requests that arrive meanwhile
// complete their own futures.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "isola/error.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

/// A future that was cancelled before it completed (concurrent.futures.CancelledError).
class cancelled_error : public error {
 public:
  using error::error;
};

namespace detail {

using clock = std::chrono::steady_clock;

/// What every future shares, whatever its value type.
struct future_core {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  bool cancelled = false;
  std::exception_ptr error;
  /// Makes progress towards completion until the deadline (for a request:
  /// reads the inbox); empty when another thread completes the future.
  std::function<void(std::optional<clock::time_point>)> pump;
  /// Called by cancel() on a pending future (withdraws the request).
  std::function<void()> on_cancel;

  virtual ~future_core() = default;

  /// Waits until done or the deadline; returns done.
  /// A deadline already past still reads what has arrived once (ready()).
  bool wait_until(std::optional<clock::time_point> deadline) {
    bool pumped = false;
    for (;;) {
      std::function<void(std::optional<clock::time_point>)> p;
      {
        std::unique_lock lk(m);
        if (done) return true;
        p = pump;
        if (deadline && clock::now() >= *deadline && (pumped || !p)) return false;
        if (!p) {
          if (deadline)
            cv.wait_until(lk, *deadline, [&] { return done; });
          else
            cv.wait(lk, [&] { return done; });
          continue;
        }
      }
      p(deadline);
      pumped = true;
    }
  }

  /// Completes with an exception; false if already done.
  bool fail(std::exception_ptr e) {
    {
      std::lock_guard lk(m);
      if (done) return false;
      error = e;
      done = true;
    }
    cv.notify_all();
    failed(e);
    return true;
  }

 protected:
  /// After fail() completed the future (a root forwarding a request for an
  /// actor process passes the failure on).
  virtual void failed(const std::exception_ptr&) noexcept {}
};

template <class T>
struct future_state : future_core {
  using stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  std::optional<stored> value;

  bool succeed(stored v) {
    {
      std::lock_guard lk(m);
      if (done) return false;
      value.emplace(std::move(v));
      done = true;
    }
    cv.notify_all();
    return true;
  }
};

}  // namespace detail

template <class T>
class future {
 public:
  using value_type = T;

  future() = default;
  explicit future(std::shared_ptr<detail::future_state<T>> s) : s_(std::move(s)) {}

  /// Whether this future refers to a result (a default-constructed one does not).
  bool valid() const noexcept { return s_ != nullptr; }

  /// Waits for the result; returns it or rethrows the failure.
  T get() const {
    state().wait_until(std::nullopt);
    return take();
  }
  /// As get(), waiting at most t: timeout_error if the result is not there.
  T get(duration t) const {
    if (!state().wait_until(deadline_after(t)))
      throw timeout_error("the result did not arrive within the timeout");
    return take();
  }

  void wait() const { state().wait_until(std::nullopt); }
  /// Returns whether the result is there.
  bool wait(duration t) const { return state().wait_until(deadline_after(t)); }

  /// Whether the result is there (does not block; makes progress on pending
  /// replies first).
  bool ready() const { return state().wait_until(detail::clock::now()); }
  /// Ready and a value (not an exception). value_error if not ready, as Python's.
  bool successful() const {
    auto& s = state();
    if (!ready()) throw value_error("the result is not ready");
    std::lock_guard lk(s.m);
    return !s.error;
  }
  /// Cancels a pending future: it completes with cancelled_error (a late
  /// reply is dropped). Returns false if it had already completed.
  bool cancel() const {
    auto& s = state();
    std::function<void()> withdraw;
    {
      std::lock_guard lk(s.m);
      if (s.done) return s.cancelled;
      withdraw = s.on_cancel;
    }
    if (!s.fail(std::make_exception_ptr(cancelled_error("the future was cancelled")))) return false;
    {
      std::lock_guard lk(s.m);
      s.cancelled = true;
    }
    if (withdraw) withdraw();
    return true;
  }
  bool cancelled() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    return s.cancelled;
  }
  /// Waits for the result; the exception it failed with, or null.
  std::exception_ptr exception() const {
    auto& s = state();
    s.wait_until(std::nullopt);
    std::lock_guard lk(s.m);
    return s.error;
  }

  /// The shared state (for as_completed / wait over many futures).
  const std::shared_ptr<detail::future_state<T>>& state_ptr() const noexcept { return s_; }

 private:
  detail::future_state<T>& state() const {
    if (!s_) throw value_error("isola::future: no state (default-constructed future)");
    return *s_;
  }
  static std::optional<detail::clock::time_point> deadline_after(duration t) {
    if (!(t.count() >= 0)) throw value_error("timeout must be a non-negative number of seconds");
    if (t > std::chrono::hours(24 * 365)) return std::nullopt;
    return detail::clock::now() + std::chrono::duration_cast<detail::clock::duration>(t);
  }
  T take() const {
    auto& s = *s_;
    std::lock_guard lk(s.m);
    if (s.error) std::rethrow_exception(s.error);
    if constexpr (!std::is_void_v<T>) return *s.value;
  }

  std::shared_ptr<detail::future_state<T>> s_;
};

enum class return_when : std::uint8_t { first_completed, first_exception, all_completed };

/// What wait(futures, ...) found: the futures done and the others.
template <class T>
struct wait_result {
  std::vector<future<T>> done;
  std::vector<future<T>> not_done;
};

namespace detail {
template <class T>
bool failed_now(const future<T>& f) {
  auto& s = *f.state_ptr();
  std::lock_guard lk(s.m);
  return s.done && s.error;
}
}  // namespace detail

/// concurrent.futures.wait: waits until the condition holds or the timeout
/// passes, and splits the futures into done and not done.
template <class T>
wait_result<T> wait(const std::vector<future<T>>& fs, return_when when = return_when::all_completed,
                    std::optional<duration> timeout = std::nullopt) {
  std::optional<detail::clock::time_point> deadline;
  if (timeout)
    deadline = detail::clock::now() + std::chrono::duration_cast<detail::clock::duration>(*timeout);
  for (;;) {
    wait_result<T> r;
    bool any_failed = false;
    for (auto& f : fs) {
      if (f.wait(duration(0))) {
        r.done.push_back(f);
        any_failed = any_failed || detail::failed_now(f);
      } else {
        r.not_done.push_back(f);
      }
    }
    bool met = r.not_done.empty() || (when == return_when::first_completed && !r.done.empty()) ||
               (when == return_when::first_exception && any_failed);
    if (met || (deadline && detail::clock::now() >= *deadline)) return r;
    r.not_done.front().wait(std::chrono::milliseconds(1));
  }
}

/// concurrent.futures.as_completed: a range that yields the futures as they
/// complete (those already complete first). Iterating past the timeout
/// throws timeout_error.
template <class T>
class as_completed_range {
 public:
  as_completed_range(std::vector<future<T>> fs, std::optional<duration> timeout)
      : pending_(std::move(fs)) {
    if (timeout)
      deadline_ =
          detail::clock::now() + std::chrono::duration_cast<detail::clock::duration>(*timeout);
  }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = future<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = const future<T>*;
    using reference = const future<T>&;
    iterator() = default;
    explicit iterator(as_completed_range* r) : r_(r) { next(); }
    const future<T>& operator*() const { return cur_; }
    const future<T>* operator->() const { return &cur_; }
    iterator& operator++() {
      next();
      return *this;
    }
    void operator++(int) { next(); }
    friend bool operator==(const iterator& a, const iterator& b) { return a.r_ == b.r_; }

   private:
    void next() {
      if (!r_ || r_->pending_.empty()) {
        r_ = nullptr;
        return;
      }
      for (;;) {
        for (std::size_t i = 0; i < r_->pending_.size(); ++i) {
          if (r_->pending_[i].wait(duration(0))) {
            cur_ = r_->pending_[i];
            r_->pending_.erase(r_->pending_.begin() + static_cast<std::ptrdiff_t>(i));
            return;
          }
        }
        if (r_->deadline_ && detail::clock::now() >= *r_->deadline_)
          throw timeout_error(std::to_string(r_->pending_.size()) +
                              " futures unfinished at the timeout");
        r_->pending_.front().wait(std::chrono::milliseconds(1));
      }
    }
    as_completed_range* r_ = nullptr;
    future<T> cur_;
  };

  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  std::vector<future<T>> pending_;
  std::optional<detail::clock::time_point> deadline_;
};

template <class T>
as_completed_range<T> as_completed(std::vector<future<T>> fs,
                                   std::optional<duration> timeout = std::nullopt) {
  return as_completed_range<T>(std::move(fs), timeout);
}

}  // namespace isola
