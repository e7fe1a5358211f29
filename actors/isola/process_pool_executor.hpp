// isola/process_pool_executor.hpp — concurrent.futures.ProcessPoolExecutor.
//
//   isola::process_pool_executor ex(4);
//   auto f = ex.submit(square, 7);               // future<int>
//   for (auto& done : isola::as_completed(futures)) use(done.get());
//   for (int v : ex.map(isola::map_options{.buffersize = 8}, square, std::views::iota(0)))
//     if (v > 1000) break;                       // lazy: reads the input as results are used
//   ex.shutdown();                               // also what ~process_pool_executor does
//
// The same workers and dispatcher as isola::pool, with the executor's
// vocabulary. A worker that dies fails only the task it was running
// (worker_died) and is replaced; Python instead breaks the whole executor
// (BrokenProcessPool, and cpython#96062 can hang it): that behaviour is
// available with executor_options::break_on_worker_death.
#pragma once

#include <signal.h>

#include <concepts>
#include <limits>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "isola/pool.hpp"

namespace isola {

struct executor_options {
  /// 0: cpu_count().
  unsigned max_workers = 0;
  std::optional<start_method> method{};
  /// Replace a worker after this many tasks (0: never).
  std::size_t max_tasks_per_child = 0;
  unsigned task_retries = 0;
  /// Python's behaviour: after a worker dies, every pending and later future
  /// fails (with isola::error "the pool is broken: ...").
  bool break_on_worker_death = false;
  /// As pool_options::task_timeout: a late task's worker is killed and
  /// replaced, its future fails with timeout_error; other futures are
  /// unaffected (and the pool is not broken, whatever the flag above says).
  duration task_timeout = duration::zero();
  detail::worker_init init{};

  template <class F, class... A>
  executor_options& initializer(F f, A&&... args) {
    pool_options o;
    o.initializer(f, std::forward<A>(args)...);
    init = std::move(o.init);
    return *this;
  }
};

/// Python 3.14's Executor.map(fn, *iterables, timeout, chunksize, buffersize).
struct map_options {
  /// From the call to map: iterating past it throws timeout_error.
  std::optional<duration> timeout{};
  /// Items per task (ProcessPoolExecutor's chunksize); 0 is taken as 1.
  std::size_t chunksize = 1;
  /// At most this many chunks submitted and not yet yielded: the input is
  /// read as the results are consumed (an endless range works). Unset: all
  /// of the input is submitted at once, as Python without buffersize.
  std::optional<std::size_t> buffersize{};
};

class process_pool_executor {
 public:
  explicit process_pool_executor(executor_options o = {})
      : pool_(detail::make_pool(o.max_workers, o.method, o.max_tasks_per_child, o.task_retries,
                                std::move(o.init), o.break_on_worker_death, o.task_timeout)) {}
  explicit process_pool_executor(unsigned max_workers)
      : process_pool_executor(executor_options{.max_workers = max_workers}) {}
  /// shutdown(wait = true), as leaving Python's with-block.
  ~process_pool_executor() {
    try {
      shutdown(true);
    } catch (...) {}
  }
  process_pool_executor(const process_pool_executor&) = delete;
  process_pool_executor& operator=(const process_pool_executor&) = delete;

  /// f(args...) in a worker. value_error after shutdown().
  template <class F, class... A>
  auto submit(F f, A&&... args) {
    return pool_.apply_async(f, std::forward<A>(args)...);
  }

  /// f(x) for every x, in order (Python's Executor.map, which collects eagerly).
  /// timeout_error if the results are not all there within timeout.
  template <class F, class Range>
  auto map(F f, const Range& range, std::optional<duration> timeout = std::nullopt,
           std::size_t chunksize = 1) {
    auto fut = pool_.map_async(f, range, chunksize);
    return timeout ? fut.get(*timeout) : fut.get();
  }

  /// f(x, y, ...) over several ranges in step (Python's map(fn, a, b)):
  /// stops at the shortest; in order, collected eagerly.
  template <class F, class R1, class R2, class... Rs>
    requires(!std::same_as<std::remove_cvref_t<F>, map_options> && std::ranges::input_range<R1> &&
             std::ranges::input_range<R2> && (std::ranges::input_range<Rs> && ...))
  auto map(F f, R1&& r1, R2&& r2, Rs&&... rs) {
    auto lazy = map(map_options{}, f, std::forward<R1>(r1), std::forward<R2>(r2),
                    std::forward<Rs>(rs)...);
    using R = typename decltype(lazy)::iterator::value_type;
    std::vector<R> out;
    for (auto& x : lazy) out.push_back(std::move(x));
    return out;
  }

  /// Python 3.14's map with options: a lazy range of f(x) (or f(x, y, ...)
  /// over several ranges, stopping at the shortest), in order. With
  /// buffersize, the input is read only as results are consumed. A task's
  /// exception is thrown when iteration reaches its result. value_error for
  /// a buffersize of 0 or after shutdown().
  template <class F, class... Ranges>
  auto map(map_options o, F f, Ranges&&... ranges) {
    static_assert(sizeof...(Ranges) >= 1, "isola::process_pool_executor::map: no input range");
    if (o.buffersize && *o.buffersize == 0)
      throw value_error("buffersize must be a positive number of chunks");
    std::optional<detail::clock::time_point> deadline;
    if (o.timeout) {
      if (!(o.timeout->count() >= 0))
        throw value_error("timeout must be a non-negative number of seconds");
      deadline = detail::clock::now() +
                 std::chrono::duration_cast<detail::clock::duration>(*o.timeout);
    }
    std::size_t window = o.buffersize ? *o.buffersize : std::numeric_limits<std::size_t>::max();
    return pool_.lazy(f, o.chunksize == 0 ? 1 : o.chunksize, window, deadline, true, "map",
                      std::forward<Ranges>(ranges)...);
  }

  /// No more submissions; with wait, returns once the submitted tasks are
  /// done and the workers have ended. cancel_futures fails the tasks no
  /// worker has started with cancelled_error.
  void shutdown(bool wait = true, bool cancel_futures = false) {
    if (cancel_futures) detail::pool_cancel_pending(*pool_.core_);
    pool_.close();
    if (wait) pool_.join();
  }

  /// Python 3.14: SIGTERM to every worker now. What has not started is
  /// cancelled (cancelled() is true), what was running fails with an
  /// isola::error (the executor is broken), later submissions throw
  /// value_error. Does not wait (shutdown() or the destructor does).
  void terminate_workers() { detail::pool_stop_workers(*pool_.core_, SIGTERM); }
  /// As terminate_workers(), with SIGKILL.
  void kill_workers() { detail::pool_stop_workers(*pool_.core_, SIGKILL); }

  std::vector<actor> workers() const { return pool_.workers(); }

 private:
  pool pool_;
};

}  // namespace isola
