// isola/process_pool_executor.hpp — concurrent.futures.ProcessPoolExecutor.
//
//   isola::process_pool_executor ex(4);
//   auto f = ex.submit(square, 7);               // future<int>
//   for (auto& done : isola::as_completed(futures)) use(done.get());
//   ex.shutdown();                               // also what ~process_pool_executor does
//
// The same workers and dispatcher as isola::pool, with the executor's
// vocabulary. A worker that dies fails only the task it was running
// (worker_died) and is replaced; Python instead breaks the whole executor
// (BrokenProcessPool, and cpython#96062 can hang it): that behaviour is
// available with executor_options::break_on_worker_death.
#pragma once

#include <optional>
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
  detail::worker_init init{};

  template <class F, class... A>
  executor_options& initializer(F f, A&&... args) {
    pool_options o;
    o.initializer(f, std::forward<A>(args)...);
    init = std::move(o.init);
    return *this;
  }
};

class process_pool_executor {
 public:
  explicit process_pool_executor(executor_options o = {})
      : pool_(detail::make_pool(o.max_workers, o.method, o.max_tasks_per_child, o.task_retries,
                                std::move(o.init), o.break_on_worker_death)) {}
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

  /// No more submissions; with wait, returns once the submitted tasks are
  /// done and the workers have ended. cancel_futures fails the tasks no
  /// worker has started with cancelled_error.
  void shutdown(bool wait = true, bool cancel_futures = false) {
    if (cancel_futures) detail::pool_cancel_pending(*pool_.core_);
    pool_.close();
    if (wait) pool_.join();
  }

  std::vector<actor> workers() const { return pool_.workers(); }

 private:
  pool pool_;
};

}  // namespace isola
