// isola/pool.hpp — a pool of worker processes (Python's multiprocessing.Pool).
//
//   int square(int x) { return x * x; }
//   isola::pool p(isola::pool_options{.processes = 4});
//   std::vector<int> squares = p.map(square, std::vector<int>{1, 2, 3});
//   isola::future<int> f = p.apply_async(square, 7);
//   p.close();
//   p.join();
//
// Workers are actor processes (forkserver by default, or spawn); a
// dispatcher (a detached CAF actor in the root) hands them tasks, at most two
// at a time each, and completes the futures. Functions are function pointers
// or captureless lambdas, and arguments and results cereal-serializable:
// they are sent to another process.
//
// What callers are guaranteed:
// - Every future completes: with the value, with remote_error (the task
//   threw: the exception's type name, what(), the worker's pid and name),
//   with worker_died (the worker ended while running it: its pid, exit code
//   or -signal, and which task), or with cancelled_error (the pool was
//   terminated first). A dead worker is replaced and the pool stays usable;
//   with task_retries > 0 a task whose worker died runs again on another
//   worker, up to that many times, before it fails with worker_died.
// - Tasks a dead worker had not started yet are handed to another worker
//   (they never fail because of it).
// - on_result / on_error callbacks run in the calling process, on the
//   pool's dispatcher thread (not the thread that submitted): keep them short.
// - ~pool() terminates, as leaving Python's `with Pool() as p:` block does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "isola/actor.hpp"
#include "isola/codec.hpp"
#include "isola/detail/callable_traits.hpp"
#include "isola/detail/pool_task.hpp"
#include "isola/future.hpp"
#include "isola/start_method.hpp"

namespace isola {

namespace detail {
struct pool_core;

/// One task as the dispatcher sees it. The callbacks run on its thread.
struct pool_job {
  function_address trampoline;
  function_address fn;
  bytes args;
  // What the task is, for errors: "apply", or "map chunk 2 of 7" (built
  // only when needed: a map of 20k one-item chunks would otherwise format
  // 20k strings nobody reads).
  const char* what = "task";
  std::size_t chunk = 0, chunks = 0;  // 1-based; 0: not a chunk
  std::string description() const {
    if (chunks == 0) return what;
    return std::string(what) + " chunk " + std::to_string(chunk) + " of " + std::to_string(chunks);
  }
  std::function<void(std::span<const std::byte>)> on_value;
  std::function<void(std::exception_ptr)> on_error;
  // What on_value / on_error point into, kept alive with the job: so that
  // they can capture a plain pointer and an index, which std::function
  // stores without allocating (a map of 20k one-item chunks saves 40k
  // allocations in the calling thread and as many frees in the dispatcher).
  std::shared_ptr<const void> keep;
};

template <class F>
auto to_function_pointer(F f) {
  if constexpr (std::is_pointer_v<F>) {
    return f;
  } else {
    static_assert(std::is_empty_v<F> && std::is_convertible_v<F, decltype(+f)>,
                  "isola::pool: the function must be a function pointer or a captureless, "
                  "non-generic lambda (it runs in another process)");
    return +f;
  }
}

template <class Fp>
using fn_traits = callable_traits_t<Fp>;

template <class Fp, std::size_t... I>
auto decayed_params(std::index_sequence<I...>)
    -> std::tuple<std::decay_t<std::tuple_element_t<I, typename fn_traits<Fp>::args_tuple>>...>;

template <class Fp>
using params_tuple_t =
    decltype(decayed_params<Fp>(std::make_index_sequence<fn_traits<Fp>::arity>{}));

template <class Fp, class Tuple>
struct call_trampoline_for;
template <class Fp, class... P>
struct call_trampoline_for<Fp, std::tuple<P...>> {
  static constexpr task_trampoline value = &call_trampoline<Fp, P...>;
};

std::shared_ptr<pool_core> make_pool(unsigned processes, std::optional<start_method> method,
                                     std::size_t maxtasksperchild, unsigned task_retries,
                                     worker_init init, bool break_on_worker_death = false);
/// Fails the tasks not yet handed to a worker with cancelled_error.
void pool_cancel_pending(pool_core& p);
/// value_error once the pool is closed or terminated.
void pool_submit(pool_core& p, std::vector<pool_job> jobs);
void pool_close(pool_core& p);
void pool_terminate(pool_core& p) noexcept;
void pool_join(pool_core& p);
unsigned pool_processes(const pool_core& p);
std::vector<actor> pool_workers(const pool_core& p);
/// The chunk size Python picks: ceil(n / (4 * processes)).
std::size_t default_chunksize(std::size_t n, unsigned processes);

/// Completes a future<std::vector<R>> from the results of its chunks.
template <class R>
struct chunk_collector {
  std::shared_ptr<future_state<std::vector<R>>> st;
  std::vector<std::vector<R>> parts;
  std::size_t remaining = 0;
  std::mutex m;
};
}  // namespace detail

struct pool_options {
  /// Worker processes; 0: cpu_count().
  unsigned processes = 0;
  /// forkserver (default) or spawn; fork is refused (the root runs CAF threads).
  std::optional<start_method> method{};
  /// Replace a worker after it has run this many tasks (0: never).
  std::size_t maxtasksperchild = 0;
  /// Run a task whose worker died again, up to this many times.
  unsigned task_retries = 0;
  detail::worker_init init{};

  /// Each worker calls f(args...) once before its first task.
  template <class F, class... A>
  pool_options& initializer(F f, A&&... args) {
    auto fp = detail::to_function_pointer(f);
    using Fp = decltype(fp);
    using P = detail::params_tuple_t<Fp>;
    init.has = true;
    init.trampoline = detail::function_address::of_static<detail::call_trampoline_for<Fp, P>::value>();
    init.fn = detail::function_address::of(fp);
    init.args = encode(P(std::forward<A>(args)...));
    return *this;
  }
};

/// Callbacks of apply_async / map_async, run on the pool's dispatcher thread.
template <class R>
struct callbacks {
  std::function<void(const R&)> on_result;
  std::function<void(std::exception_ptr)> on_error;
};

/// The lazy result of imap / imap_unordered: iterate it to get the results
/// as they are needed (imap: in order; imap_unordered: as they complete).
template <class R>
class imap_results {
 public:
  imap_results(std::vector<future<std::vector<R>>> chunks, bool ordered)
      : chunks_(std::move(chunks)), ordered_(ordered), taken_(chunks_.size(), false) {}

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using pointer = const R*;
    using reference = const R&;
    iterator() = default;
    explicit iterator(imap_results* r) : r_(r) { advance(); }
    const R& operator*() const { return r_->current_[pos_]; }
    iterator& operator++() {
      if (++pos_ >= r_->current_.size()) advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) { return a.r_ == b.r_; }

   private:
    void advance() {
      pos_ = 0;
      while (r_ && r_->next_chunk())
        if (!r_->current_.empty()) return;
      r_ = nullptr;
    }
    imap_results* r_ = nullptr;
    std::size_t pos_ = 0;
  };

  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  bool next_chunk() {
    if (done_ == chunks_.size()) return false;
    std::size_t i = 0;
    if (ordered_) {
      i = done_;
    } else {
      for (;;) {  // the first chunk to complete (they are completed by the dispatcher)
        bool found = false;
        for (std::size_t k = 0; k < chunks_.size() && !found; ++k)
          if (!taken_[k] && chunks_[k].wait(duration(0))) {
            i = k;
            found = true;
          }
        if (found) break;
        for (std::size_t k = 0; k < chunks_.size(); ++k)
          if (!taken_[k]) {
            chunks_[k].wait(std::chrono::milliseconds(1));
            break;
          }
      }
    }
    taken_[i] = true;
    ++done_;
    current_ = chunks_[i].get();  // rethrows the chunk's failure
    return true;
  }

  std::vector<future<std::vector<R>>> chunks_;
  bool ordered_;
  std::vector<bool> taken_;
  std::size_t done_ = 0;
  std::vector<R> current_;
};

class process_pool_executor;

class pool {
 public:
  explicit pool(pool_options opts = {})
      : core_(detail::make_pool(opts.processes, opts.method, opts.maxtasksperchild,
                                opts.task_retries, std::move(opts.init))) {}
  explicit pool(unsigned processes) : pool(pool_options{.processes = processes}) {}
  /// Terminates (as leaving Python's with-block does).
  ~pool() {
    if (core_) detail::pool_terminate(*core_);
  }
  pool(pool&&) noexcept = default;
  pool& operator=(pool&&) noexcept = default;
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// f(args...) in a worker; waits for the result.
  template <class F, class... A>
  auto apply(F f, A&&... args) {
    return apply_async(f, std::forward<A>(args)...).get();
  }

  template <class F, class... A>
  auto apply_async(F f, A&&... args) {
    using Fp = decltype(detail::to_function_pointer(f));
    using R = decltype(std::apply(std::declval<Fp>(), std::declval<detail::params_tuple_t<Fp>>()));
    return apply_async(callbacks<detail::task_value_t<R>>{}, f, std::forward<A>(args)...);
  }

  /// As apply_async, with callbacks run on the dispatcher thread.
  template <class CbR, class F, class... A>
  auto apply_async(callbacks<CbR> cbs, F f, A&&... args) {
    auto fp = detail::to_function_pointer(f);
    using Fp = decltype(fp);
    using P = detail::params_tuple_t<Fp>;
    using R = decltype(std::apply(fp, std::declval<P>()));
    using V = detail::task_value_t<R>;
    static_assert(std::is_same_v<CbR, V>,
                  "isola::pool::apply_async: callbacks<R> must match f's result");
    static_assert(std::is_void_v<R> || is_serializable_v<R>,
                  "isola::pool: the function's result must be cereal-serializable");
    auto st = std::make_shared<detail::future_state<R>>();
    detail::pool_job job;
    job.trampoline = detail::function_address::of_static<detail::call_trampoline_for<Fp, P>::value>();
    job.fn = detail::function_address::of(fp);
    job.args = encode(P(std::forward<A>(args)...));
    job.what = "apply";
    job.on_value = [st, cb = cbs.on_result](std::span<const std::byte> b) {
      try {
        if constexpr (std::is_void_v<R>) {
          st->succeed({});
          if (cb) cb(unit{});
        } else {
          auto v = decode<R>(b);
          if (cb) {
            st->succeed(v);
            cb(v);
          } else {
            st->succeed(std::move(v));
          }
        }
      } catch (...) {
        st->fail(std::current_exception());
      }
    };
    job.on_error = [st, cb = cbs.on_error](std::exception_ptr e) {
      st->fail(e);
      if (cb) cb(e);
    };
    std::vector<detail::pool_job> jobs;
    jobs.push_back(std::move(job));
    detail::pool_submit(*core_, std::move(jobs));
    return future<R>(std::move(st));
  }

  /// f(x) for every x of range, in order; waits for all of them.
  template <class F, class Range>
  auto map(F f, const Range& range, std::size_t chunksize = 0) {
    return map_async(f, range, chunksize).get();
  }
  template <class F, class Range>
  auto map_async(F f, const Range& range, std::size_t chunksize = 0) {
    auto fp = detail::to_function_pointer(f);
    using Fp = decltype(fp);
    using A = std::tuple_element_t<0, detail::params_tuple_t<Fp>>;
    static_assert(detail::fn_traits<Fp>::arity == 1,
                  "isola::pool::map: f takes one argument (starmap takes more)");
    using R0 = decltype(fp(std::declval<A>()));
    static_assert(std::is_void_v<R0> || is_serializable_v<R0>,
                  "isola::pool: the function's result must be cereal-serializable");
    return chunked<detail::task_value_t<R0>, A, &detail::map_trampoline<Fp, A>>(fp, range,
                                                                              chunksize, "map");
  }

  /// f(args...) for every tuple of range (Python's starmap).
  template <class F, class Range>
  auto starmap(F f, const Range& range, std::size_t chunksize = 0) {
    return starmap_async(f, range, chunksize).get();
  }
  template <class F, class Range>
  auto starmap_async(F f, const Range& range, std::size_t chunksize = 0) {
    auto fp = detail::to_function_pointer(f);
    using Fp = decltype(fp);
    using P = detail::params_tuple_t<Fp>;
    using R0 = decltype(std::apply(fp, std::declval<P>()));
    static_assert(std::is_void_v<R0> || is_serializable_v<R0>,
                  "isola::pool: the function's result must be cereal-serializable");
    return chunked<detail::task_value_t<R0>, P, &detail::starmap_trampoline<Fp, P>>(
        fp, range, chunksize, "starmap");
  }

  /// A lazy range of f(x), in order (chunksize 1 by default, as Python's).
  template <class F, class Range>
  auto imap(F f, const Range& range, std::size_t chunksize = 1) {
    return lazy(f, range, chunksize, true);
  }
  /// A lazy range of f(x), in the order they complete.
  template <class F, class Range>
  auto imap_unordered(F f, const Range& range, std::size_t chunksize = 1) {
    return lazy(f, range, chunksize, false);
  }

  /// No more tasks (value_error afterwards); the workers end once the
  /// submitted ones are done.
  void close() { detail::pool_close(*core_); }
  /// Ends the workers now; unfinished futures fail with cancelled_error.
  void terminate() { detail::pool_terminate(*core_); }
  /// Waits for the workers to end (after close or terminate; value_error otherwise).
  void join() { detail::pool_join(*core_); }

  unsigned processes() const { return detail::pool_processes(*core_); }
  /// The current workers (for tests and monitoring).
  std::vector<actor> workers() const { return detail::pool_workers(*core_); }

 private:
  friend class process_pool_executor;
  explicit pool(std::shared_ptr<detail::pool_core> core) : core_(std::move(core)) {}

  /// The encoded chunks of range (each as a std::vector<Item>, which is what
  /// the trampolines decode), without a vector per chunk.
  template <class Item, class Range>
  std::vector<bytes> encode_chunks(const Range& range, std::size_t& chunksize) {
    std::vector<Item> all;
    for (const auto& x : range) all.emplace_back(x);
    if (chunksize == 0) chunksize = detail::default_chunksize(all.size(), processes());
    std::vector<bytes> out;
    out.reserve((all.size() + chunksize - 1) / chunksize);
    std::vector<Item> one;  // reused: its capacity stays
    for (std::size_t i = 0; i < all.size(); i += chunksize) {
      auto b = all.begin() + static_cast<std::ptrdiff_t>(i);
      auto e = all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + chunksize));
      one.assign(std::make_move_iterator(b), std::make_move_iterator(e));
      out.push_back(encode(one));
    }
    return out;
  }

  /// Submits one job per chunk; on_part(i, results) or on_fail(i, error) is
  /// called for each, on the dispatcher thread.
  template <class R, detail::task_trampoline Tramp, class Fp>
  void submit_chunks(Fp fp, std::vector<bytes> chunks, const char* what, std::function<void(std::size_t, std::vector<R>&&)> on_part,
                     std::function<void(std::size_t, std::exception_ptr)> on_fail) {
    std::vector<detail::pool_job> jobs;
    std::size_t n = chunks.size();
    jobs.reserve(n);
    // One copy of the callbacks for all chunks (each job holds a pointer).
    struct sinks {
      std::function<void(std::size_t, std::vector<R>&&)> part;
      std::function<void(std::size_t, std::exception_ptr)> fail;
    };
    auto keep = std::make_shared<const sinks>(sinks{std::move(on_part), std::move(on_fail)});
    const sinks* cb = keep.get();
    for (std::size_t i = 0; i < n; ++i) {
      detail::pool_job job;
      job.trampoline = detail::function_address::of_static<Tramp>();
      job.fn = detail::function_address::of(fp);
      job.args = std::move(chunks[i]);
      job.what = what;
      job.chunk = i + 1;
      job.chunks = n;
      job.keep = keep;
      job.on_value = [i, cb](std::span<const std::byte> b) {
        std::vector<R> v;
        try {
          v = decode<std::vector<R>>(b);
        } catch (...) {
          cb->fail(i, std::current_exception());
          return;
        }
        cb->part(i, std::move(v));
      };
      job.on_error = [i, cb](std::exception_ptr e) { cb->fail(i, e); };
      jobs.push_back(std::move(job));
    }
    detail::pool_submit(*core_, std::move(jobs));
  }

  template <class R, class Item, detail::task_trampoline Tramp, class Fp, class Range>
  future<std::vector<R>> chunked(Fp fp, const Range& range, std::size_t chunksize,
                                 const char* what) {
    auto chunks = encode_chunks<Item>(range, chunksize);
    auto st = std::make_shared<detail::future_state<std::vector<R>>>();
    if (chunks.empty()) {
      st->succeed({});
      return future<std::vector<R>>(st);
    }
    auto col = std::make_shared<detail::chunk_collector<R>>();
    col->st = st;
    col->parts.resize(chunks.size());
    col->remaining = chunks.size();
    submit_chunks<R, Tramp>(
        fp, std::move(chunks), what,
        [col](std::size_t i, std::vector<R>&& v) {
          std::vector<R> all;
          {
            std::lock_guard lk(col->m);
            col->parts[i] = std::move(v);
            if (--col->remaining != 0) return;
            for (auto& p : col->parts)
              for (auto& x : p) all.push_back(std::move(x));
          }
          col->st->succeed(std::move(all));
        },
        [col](std::size_t, std::exception_ptr e) { col->st->fail(e); });
    return future<std::vector<R>>(st);
  }

  template <class F, class Range>
  auto lazy(F f, const Range& range, std::size_t chunksize, bool ordered) {
    auto fp = detail::to_function_pointer(f);
    using Fp = decltype(fp);
    using A = std::tuple_element_t<0, detail::params_tuple_t<Fp>>;
    using R = detail::task_value_t<decltype(fp(std::declval<A>()))>;
    if (chunksize == 0) chunksize = 1;
    auto chunks = encode_chunks<A>(range, chunksize);
    std::vector<std::shared_ptr<detail::future_state<std::vector<R>>>> states;
    std::vector<future<std::vector<R>>> futures;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      states.push_back(std::make_shared<detail::future_state<std::vector<R>>>());
      futures.emplace_back(states.back());
    }
    submit_chunks<R, &detail::map_trampoline<Fp, A>>(
        fp, std::move(chunks), ordered ? "imap" : "imap_unordered",
        [states](std::size_t i, std::vector<R>&& v) { states[i]->succeed(std::move(v)); },
        [states](std::size_t i, std::exception_ptr e) { states[i]->fail(e); });
    return imap_results<R>(std::move(futures), ordered);
  }

  std::shared_ptr<detail::pool_core> core_;
};

}  // namespace isola
