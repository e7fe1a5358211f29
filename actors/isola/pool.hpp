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
//   As multiprocessing's, a callback has run before the future completes:
//   once get() returns (or throws), the callback is over.
// - imap / imap_unordered read their input as the results are consumed (a
//   window of chunks ahead of the consumer): an endless range works. The
//   input not yet read when the pool is closed or terminated is never run:
//   iterating further throws value_error.
// - ~pool() terminates, as leaving Python's `with Pool() as p:` block does.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
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
    if (chunk == 0) return what;
    std::string d = std::string(what) + " chunk " + std::to_string(chunk);
    if (chunks != 0) d += " of " + std::to_string(chunks);  // 0: a lazy map's, the total unknown
    return d;
  }
  /// Called as the job is handed to a worker; false: its future was
  /// cancelled, the job is dropped. Empty: always run.
  std::function<bool()> on_start;
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
                                     worker_init init, bool break_on_worker_death = false,
                                     duration task_timeout = duration::zero(),
                                     std::optional<isola::sandbox> box = std::nullopt);
/// Fails the tasks not yet handed to a worker with cancelled_error.
void pool_cancel_pending(pool_core& p);
/// Python 3.14's terminate_workers / kill_workers: cancels what has not
/// started, closes the pool, sends sig to every worker; what they were
/// running fails (the pool is broken). Does not wait.
void pool_stop_workers(pool_core& p, int sig);
/// value_error once the pool is closed or terminated.
void pool_submit(pool_core& p, std::vector<pool_job> jobs);
void pool_close(pool_core& p);
void pool_terminate(pool_core& p) noexcept;
void pool_join(pool_core& p);
unsigned pool_processes(const pool_core& p);
std::vector<actor> pool_workers(const pool_core& p);
/// The chunk size Python picks: ceil(n / (4 * processes)).
std::size_t default_chunksize(std::size_t n, unsigned processes);

/// Runs a user's callback; one that throws is logged (it must not keep the
/// future from completing, nor stop the dispatcher).
void log_callback_failure(std::exception_ptr e) noexcept;
template <class F>
void run_user_callback(F&& f) noexcept {
  try {
    f();
  } catch (...) {
    log_callback_failure(std::current_exception());
  }
}

/// The input of a lazy map: the ranges (held as views: an rvalue range is
/// owned, an lvalue one referred to) read in step, one Item per step
/// (Item(x) for one range, Item(x, y, ...) for several: zip, which stops at
/// the shortest). Never moved once built (it holds iterators into itself).
template <class Item, class... Views>
struct zip_source {
  std::tuple<Views...> views;
  std::optional<std::tuple<std::ranges::iterator_t<Views>...>> its;

  explicit zip_source(Views... v) : views(std::move(v)...) {}
  zip_source(const zip_source&) = delete;
  zip_source& operator=(const zip_source&) = delete;

  std::optional<Item> next() {
    return step(std::index_sequence_for<Views...>{});
  }

 private:
  template <std::size_t... I>
  std::optional<Item> step(std::index_sequence<I...>) {
    if (!its) its.emplace(std::ranges::begin(std::get<I>(views))...);
    if (((std::get<I>(*its) == std::ranges::end(std::get<I>(views))) || ...)) return std::nullopt;
    std::optional<Item> out(std::in_place, *std::get<I>(*its)...);
    (++std::get<I>(*its), ...);
    return out;
  }
};

/// Where a lazy map's chunks land, by their sequence number.
template <class R>
struct lazy_sink {
  using outcome = std::variant<std::vector<R>, std::exception_ptr>;
  std::mutex m;
  std::condition_variable cv;
  std::map<std::size_t, outcome> ready;
  void put(std::size_t i, outcome o) {
    {
      std::lock_guard lk(m);
      ready.emplace(i, std::move(o));
    }
    cv.notify_all();
  }
};

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
  /// A task (one chunk of a map) that runs longer than this has its worker
  /// killed and replaced; its result fails with timeout_error (or it is run
  /// again under task_retries). Other tasks are unaffected. Zero: no limit.
  duration task_timeout = duration::zero();
  /// What every worker process may do (isola/sandbox.hpp).
  std::optional<isola::sandbox> sandbox{};
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

/// The lazy result of imap / imap_unordered (and of the executor's map with
/// options): iterate it once to get the results as they are needed (in
/// order, or in the order they complete). It reads the input only as the
/// results are consumed: at most `window` chunks are submitted and not yet
/// yielded. A chunk's failure is thrown when iteration reaches it.
template <class R>
class imap_results {
 public:
  using next_input_fn = std::function<std::optional<bytes>()>;
  using submit_fn = std::function<void(std::vector<bytes>, std::size_t first)>;

  imap_results(next_input_fn next_input, submit_fn submit, std::shared_ptr<detail::lazy_sink<R>> sink,
               std::size_t window, bool ordered,
               std::optional<detail::clock::time_point> deadline = std::nullopt)
      : next_input_(std::move(next_input)),
        submit_(std::move(submit)),
        sink_(std::move(sink)),
        window_(std::max<std::size_t>(window, 1)),
        ordered_(ordered),
        deadline_(deadline) {
    top_up();  // as Python's: the first tasks run before iteration starts
  }

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
  /// Submits more input once half the window has been consumed (one
  /// submission per half window, not per chunk).
  void top_up() {
    if (input_done_) return;
    std::size_t inflight = submitted_ - taken_;
    if (inflight > window_ / 2) return;
    std::vector<bytes> more;
    while (inflight + more.size() < window_) {
      auto c = next_input_();
      if (!c) {
        input_done_ = true;
        break;
      }
      more.push_back(std::move(*c));
    }
    if (more.empty()) return;
    std::size_t first = submitted_;
    submitted_ += more.size();
    submit_(std::move(more), first);
  }

  bool next_chunk() {
    top_up();
    if (taken_ == submitted_) return false;
    typename detail::lazy_sink<R>::outcome got;
    {
      std::unique_lock lk(sink_->m);
      auto ready = [&] {
        return ordered_ ? sink_->ready.count(taken_) != 0 : !sink_->ready.empty();
      };
      if (deadline_) {
        if (!sink_->cv.wait_until(lk, *deadline_, ready))
          throw timeout_error("the results did not arrive within the timeout");
      } else {
        sink_->cv.wait(lk, ready);
      }
      auto it = ordered_ ? sink_->ready.find(taken_) : sink_->ready.begin();
      got = std::move(it->second);
      sink_->ready.erase(it);
    }
    ++taken_;
    top_up();  // keep the workers busy while the consumer works
    if (auto* e = std::get_if<std::exception_ptr>(&got)) std::rethrow_exception(*e);
    current_ = std::move(std::get<std::vector<R>>(got));
    return true;
  }

  next_input_fn next_input_;
  submit_fn submit_;
  std::shared_ptr<detail::lazy_sink<R>> sink_;
  std::size_t window_;
  bool ordered_;
  std::optional<detail::clock::time_point> deadline_;
  bool input_done_ = false;
  std::size_t submitted_ = 0, taken_ = 0;
  std::vector<R> current_;
};

class process_pool_executor;

class pool {
 public:
  explicit pool(pool_options opts = {})
      : core_(detail::make_pool(opts.processes, opts.method, opts.maxtasksperchild,
                                opts.task_retries, std::move(opts.init), false,
                                opts.task_timeout, std::move(opts.sandbox))) {}
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
    job.on_start = [st] { return st->set_running(); };
    // The callback runs before the future completes, as multiprocessing's
    // (ApplyResult._set calls it before setting the event get() waits on).
    job.on_value = [st, cb = cbs.on_result](std::span<const std::byte> b) {
      if constexpr (std::is_void_v<R>) {
        if (cb) detail::run_user_callback([&] { cb(unit{}); });
        st->succeed({});
      } else {
        std::optional<R> v;
        try {
          v.emplace(decode<R>(b));
        } catch (...) {
          st->fail(std::current_exception());
          return;
        }
        if (cb) detail::run_user_callback([&] { cb(*v); });
        st->succeed(std::move(*v));
      }
    };
    job.on_error = [st, cb = cbs.on_error](std::exception_ptr e) {
      if (cb) detail::run_user_callback([&] { cb(e); });
      st->fail(e);
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
  /// The input is read as the results are consumed (an endless range works;
  /// an rvalue range is kept, an lvalue one must outlive the iteration).
  template <class F, class Range>
  auto imap(F f, Range&& range, std::size_t chunksize = 1) {
    return lazy(f, chunksize == 0 ? 1 : chunksize, imap_window(), std::nullopt, true, "imap",
                std::forward<Range>(range));
  }
  /// A lazy range of f(x), in the order they complete.
  template <class F, class Range>
  auto imap_unordered(F f, Range&& range, std::size_t chunksize = 1) {
    return lazy(f, chunksize == 0 ? 1 : chunksize, imap_window(), std::nullopt, false,
                "imap_unordered", std::forward<Range>(range));
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

  /// Chunks imap keeps submitted ahead of its consumer: enough for every
  /// worker to hold a few (the dispatcher batches them), few enough that
  /// an endless input costs nothing.
  std::size_t imap_window() const { return std::size_t{16} * std::max(1u, processes()); }

  /// f over the ranges (one: f(x); several: f(x, y, ...), stopping at the
  /// shortest), read lazily: see imap_results.
  template <class F, class... Ranges>
  auto lazy(F f, std::size_t chunksize, std::size_t window,
            std::optional<detail::clock::time_point> deadline, bool ordered, const char* what,
            Ranges&&... ranges) {
    static_assert(sizeof...(Ranges) >= 1);
    static_assert((std::ranges::input_range<Ranges> && ...),
                  "isola: map's inputs must be ranges (begin/end)");
    auto fp = detail::to_function_pointer(f);
    using Fp = decltype(fp);
    using P = detail::params_tuple_t<Fp>;
    static_assert(detail::fn_traits<Fp>::arity == sizeof...(Ranges),
                  "isola: f must take one argument per input range");
    constexpr bool one = sizeof...(Ranges) == 1;
    using Item = std::conditional_t<one, std::tuple_element_t<0, P>, P>;
    using R0 = decltype(std::apply(fp, std::declval<P>()));
    static_assert(std::is_void_v<R0> || is_serializable_v<R0>,
                  "isola::pool: the function's result must be cereal-serializable");
    using R = detail::task_value_t<R0>;
    constexpr detail::task_trampoline tramp = [] {
      if constexpr (one)
        return &detail::map_trampoline<Fp, Item>;
      else
        return &detail::starmap_trampoline<Fp, Item>;
    }();
    using source_t = detail::zip_source<Item, std::views::all_t<Ranges>...>;
    auto src = std::make_shared<source_t>(std::views::all(std::forward<Ranges>(ranges))...);
    typename imap_results<R>::next_input_fn next_input = [src, chunksize]() -> std::optional<bytes> {
      std::vector<Item> items;
      while (items.size() < chunksize) {
        auto x = src->next();
        if (!x) break;
        items.push_back(std::move(*x));
      }
      if (items.empty()) return std::nullopt;
      return encode(items);
    };
    auto sink = std::make_shared<detail::lazy_sink<R>>();
    typename imap_results<R>::submit_fn submit = [core = core_, sink, fp, what](
                                                     std::vector<bytes> chunks, std::size_t first) {
      std::vector<detail::pool_job> jobs;
      jobs.reserve(chunks.size());
      detail::lazy_sink<R>* out = sink.get();
      for (std::size_t k = 0; k < chunks.size(); ++k) {
        std::size_t i = first + k;
        detail::pool_job job;
        job.trampoline = detail::function_address::of_static<tramp>();
        job.fn = detail::function_address::of(fp);
        job.args = std::move(chunks[k]);
        job.what = what;
        job.chunk = i + 1;
        job.keep = sink;
        job.on_value = [i, out](std::span<const std::byte> b) {
          try {
            out->put(i, decode<std::vector<R>>(b));
          } catch (...) {
            out->put(i, std::current_exception());
          }
        };
        job.on_error = [i, out](std::exception_ptr e) { out->put(i, e); };
        jobs.push_back(std::move(job));
      }
      detail::pool_submit(*core, std::move(jobs));
    };
    return imap_results<R>(std::move(next_input), std::move(submit), std::move(sink), window,
                           ordered, deadline);
  }

  std::shared_ptr<detail::pool_core> core_;
};

}  // namespace isola
