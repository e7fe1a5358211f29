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
//
// As concurrent.futures.Future: cancelled() is true exactly when get()
// throws cancelled_error (whoever cancelled it: cancel(), an executor's
// shutdown(cancel_futures), a terminated pool); a running() future (a pool
// task handed to a worker) cannot be cancelled; add_done_callback(f) runs f
// at once if the future is done, otherwise in the thread that completes it,
// after the waiters are released (Python's set_result notifies, then calls
// the callbacks: a get() may return before a done-callback has run). The
// pool's own on_result / on_error callbacks are multiprocessing's and run
// before the future completes (see pool.hpp).
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
#include "isola/logging.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

/// A future that was cancelled before it completed (concurrent.futures.CancelledError).
class cancelled_error : public error {
 public:
  using error::error;
};

namespace detail {

using clock = std::chrono::steady_clock;

/// Whether e holds a cancelled_error (so that cancelled() and get()'s
/// exception always agree, whoever completed the future).
inline bool holds_cancelled(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

/// What every future shares, whatever its value type.
struct future_core {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  bool cancelled = false;
  /// Handed to whoever computes it (a worker): cancel() no longer applies.
  bool running = false;
  std::exception_ptr error;
  /// Makes progress towards completion until the deadline (for a request:
  /// reads the inbox); empty when another thread completes the future.
  std::function<void(std::optional<clock::time_point>)> pump;
  /// Called by cancel() on a pending future (withdraws the request).
  std::function<void()> on_cancel;
  /// add_done_callback's, until the future completes (then run and dropped).
  std::vector<std::function<void()>> callbacks;

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
    const bool is_cancel = holds_cancelled(e);
    std::vector<std::function<void()>> cbs;
    {
      std::lock_guard lk(m);
      if (done) return false;
      error = e;
      done = true;
      cancelled = is_cancel;
      cbs.swap(callbacks);
    }
    cv.notify_all();
    failed(e);
    run_callbacks(cbs);
    return true;
  }

  /// Marks the future running; false (and nothing changes) if it is done
  /// (cancelled meanwhile: the caller drops the work).
  bool set_running() {
    std::lock_guard lk(m);
    if (done) return false;
    running = true;
    return true;
  }

  /// Runs f now if done, else when the future completes.
  void add_callback(std::function<void()> f) {
    {
      std::lock_guard lk(m);
      if (!done) {
        callbacks.push_back(std::move(f));
        return;
      }
    }
    std::vector<std::function<void()>> one;
    one.push_back(std::move(f));
    run_callbacks(one);
  }

 protected:
  /// After fail() completed the future (a root forwarding a request for an
  /// actor process passes the failure on).
  virtual void failed(const std::exception_ptr&) noexcept {}

  /// As Python's _invoke_callbacks: a callback that throws is logged and the
  /// others still run.
  static void run_callbacks(std::vector<std::function<void()>>& cbs) noexcept {
    for (auto& f : cbs) {
      try {
        f();
      } catch (const std::exception& ex) {
        try {
          get_logger().error(std::string("exception calling a future's done-callback: ") +
                             ex.what());
        } catch (...) {}
      } catch (...) {
        try {
          get_logger().error("a non-standard exception from a future's done-callback");
        } catch (...) {}
      }
    }
  }
};

template <class T>
struct future_state : future_core {
  using stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  std::optional<stored> value;

  bool succeed(stored v) {
    std::vector<std::function<void()>> cbs;
    {
      std::lock_guard lk(m);
      if (done) return false;
      value.emplace(std::move(v));
      done = true;
      cbs.swap(callbacks);
    }
    cv.notify_all();
    run_callbacks(cbs);
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
  /// reply is dropped; a pool task not yet handed out never runs). Returns
  /// false if it is running (a pool task handed to a worker) or had already
  /// completed other than by cancellation, as Python's.
  bool cancel() const {
    auto& s = state();
    std::function<void()> withdraw;
    {
      std::lock_guard lk(s.m);
      if (s.done) return s.cancelled;
      if (s.running) return false;
      withdraw = s.on_cancel;
    }
    if (!s.fail(std::make_exception_ptr(cancelled_error("the future was cancelled")))) {
      std::lock_guard lk(s.m);
      return s.cancelled;
    }
    if (withdraw) withdraw();
    return true;
  }
  bool cancelled() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    return s.cancelled;
  }
  /// Whether it is being computed now (handed to a worker, not yet done).
  bool running() const {
    auto& s = state();
    std::lock_guard lk(s.m);
    return s.running && !s.done;
  }
  /// Waits for the result; the exception it failed with, or null.
  /// cancelled_error if it was cancelled (Python's exception()).
  std::exception_ptr exception() const {
    auto& s = state();
    s.wait_until(std::nullopt);
    return error_of(s);
  }
  /// As exception(), waiting at most t: timeout_error if it is not done
  /// within t (and the result is not lost).
  std::exception_ptr exception(duration t) const {
    auto& s = state();
    if (!s.wait_until(deadline_after(t)))
      throw timeout_error("the future did not complete within the timeout");
    return error_of(s);
  }

  /// f(*this) once the future is done: now, in this thread, if it is done
  /// already; otherwise in the thread that completes it, right after the
  /// waiters are released (Python's Future.add_done_callback). A callback
  /// that throws is logged and the others still run. A request's future
  /// completes while some thread waits on it (its inbox is read then): its
  /// callback runs in that thread.
  template <class F>
  void add_done_callback(F f) const {
    static_assert(std::is_invocable_v<F&, const future<T>&>,
                  "add_done_callback: f is called with the future (const future<T>&)");
    std::weak_ptr<detail::future_state<T>> w = state_ptr_checked();
    state().add_callback([w, f = std::move(f)]() mutable {
      if (auto p = w.lock()) f(future<T>(std::move(p)));
    });
  }

  /// The shared state (for as_completed / wait over many futures).
  const std::shared_ptr<detail::future_state<T>>& state_ptr() const noexcept { return s_; }

 private:
  detail::future_state<T>& state() const {
    if (!s_) throw value_error("isola::future: no state (default-constructed future)");
    return *s_;
  }
  const std::shared_ptr<detail::future_state<T>>& state_ptr_checked() const {
    state();
    return s_;
  }
  static std::exception_ptr error_of(detail::future_state<T>& s) {
    std::lock_guard lk(s.m);
    if (s.cancelled) std::rethrow_exception(s.error);
    return s.error;
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
/// Failed with an exception other than cancellation (what FIRST_EXCEPTION
/// waits for: Python counts a cancelled future as completed, not failed).
template <class T>
bool failed_now(const future<T>& f) {
  auto& s = *f.state_ptr();
  std::lock_guard lk(s.m);
  return s.done && s.error && !s.cancelled;
}

/// The futures once each, in the order first given (Python's set(fs)).
template <class T>
std::vector<future<T>> distinct(std::vector<future<T>> fs) {
  std::vector<future<T>> out;
  out.reserve(fs.size());
  for (auto& f : fs) {
    if (!f.valid()) throw value_error("a default-constructed future has no result to wait for");
    bool seen = false;
    for (auto& g : out) seen = seen || g.state_ptr() == f.state_ptr();
    if (!seen) out.push_back(std::move(f));
  }
  return out;
}
}  // namespace detail

/// concurrent.futures.wait: waits until the condition holds or the timeout
/// passes, and splits the futures into done and not done (each future once,
/// however often it was given).
template <class T>
wait_result<T> wait(const std::vector<future<T>>& given,
                    return_when when = return_when::all_completed,
                    std::optional<duration> timeout = std::nullopt) {
  std::optional<detail::clock::time_point> deadline;
  if (timeout)
    deadline = detail::clock::now() + std::chrono::duration_cast<detail::clock::duration>(*timeout);
  const auto fs = detail::distinct(given);
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
/// complete (those already complete first), each once however often it was
/// given. Iterating past the timeout throws timeout_error.
template <class T>
class as_completed_range {
 public:
  as_completed_range(std::vector<future<T>> fs, std::optional<duration> timeout)
      : pending_(detail::distinct(std::move(fs))) {
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
