// The pool: worker actors and a dispatcher. See isola/pool.hpp.
//
// The dispatcher is a detached CAF actor whose one message runs its loop:
// it owns the workers and the tasks in flight. It hands work out in batches
// (a task_batch is one envelope; a batch is one task while the queue is
// short, up to max_batch tasks when it is long), each worker holding at most
// two batches (one running, one waiting in its mailbox, so that a worker
// never idles between batches). A worker sends one task_result per task as
// each finishes, to the dispatcher's own inbox, so a task costs one small
// envelope each way and no request bookkeeping. A worker's results arrive in
// the order of its tasks; so when the root reports a worker dead, the first
// of its tasks whose result has not come (after everything it sent has been
// read) is the one it was running: that task fails (worker_died) or is
// retried; the others never started and go back to the front of the queue.
//
// task_timeout (pebble's per-task deadline): the first task in flight on a
// worker is the one it runs, and it started when the worker was handed work
// while idle or when the result before it arrived. A worker whose running
// task has run past the timeout is killed (SIGKILL, so a stopped one too);
// when its exit arrives, that task fails with timeout_error (or is retried
// under task_retries) and the worker is replaced; its other tasks go back to
// the queue, and no other worker is touched.
#include <caf/all.hpp>

#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <typeinfo>

#include "core/mailbox.hpp"
#include "isola/logging.hpp"
#include "isola/pool.hpp"
#include "root/registry.hpp"

namespace isola::detail {

namespace {

using pool_run_atom = caf::atom_constant<caf::atom("isolapool")>;
constexpr std::size_t batches_per_worker = 2;
constexpr std::size_t max_batch = 64;
constexpr std::size_t max_batch_bytes = 64 * 1024;

int exitcode_of(const exit_reason& r) {
  switch (r.what) {
    case exit_reason::kind::normal:
    case exit_reason::kind::shutdown: return 0;
    case exit_reason::kind::exit_code: return r.code;
    case exit_reason::kind::signal: return -r.code;
    case exit_reason::kind::linked: return -9;
    case exit_reason::kind::exception: return 1;
    case exit_reason::kind::unknown: return 255;
    case exit_reason::kind::sandbox_violation: return -SIGSYS;
    case exit_reason::kind::limit:
      return r.text == "cpu" ? -SIGXCPU : r.text == "file_size" ? -SIGXFSZ : 1;
  }
  return 255;
}
}  // namespace

task_result run_task(const task_msg& t) {
  task_result r;
  r.id = t.id;
  try {
    auto tr = t.trampoline.as<task_trampoline>("a pool task's trampoline");
    r.value = tr(t.fn.fn, t.args);
    r.ok = true;
  } catch (const std::exception& e) {
    r.type_name = demangle(typeid(e).name());
    r.what = e.what();
  } catch (...) {
    r.type_name = "unknown";
    r.what = "a non-standard exception";
  }
  return r;
}

behavior pool_worker(worker_init init) {
  if (init.has) {
    auto t = init.trampoline.as<task_trampoline>("a pool initializer's trampoline");
    t(init.fn.fn, init.args);  // throws: the worker fails to start, and the pool is told
  }
  return {[](const task_batch& b) {
    for (const auto& t : b.tasks) b.reply_to.send(run_task(t));
  }};
}

struct pool_core : std::enable_shared_from_this<pool_core> {
  struct job_rec {
    pool_job job;
    std::uint64_t id = 0;
    unsigned tries = 0;
  };
  struct inflight_rec {
    std::shared_ptr<job_rec> job;
    bool ends_batch = false;
  };
  struct worker_rec {
    actor a;
    std::deque<inflight_rec> inflight;  // in the order the worker runs them
    std::size_t batches = 0;            // batches in flight
    std::size_t assigned = 0;
    bool dead = false;
    clock::time_point front_since{};  // when inflight.front() started running
    std::uint64_t timed_out_job = 0;  // killed for running this job past task_timeout
  };
  enum class state { running, closed, terminated };

  unsigned n = 1;
  std::optional<start_method> method;
  std::optional<isola::sandbox> box;  // every worker's
  std::size_t maxtasks = 0;
  unsigned retries = 0;
  clock::duration task_timeout{};  // zero: none
  worker_init init;
  bool break_on_death = false;  // Python's BrokenProcessPool behaviour
  /// Set by terminate_workers / kill_workers (under m): the pool is broken
  /// on purpose, no worker is replaced.
  std::string stopped_by;

  mutable std::mutex m;
  std::condition_variable cv;
  std::deque<std::shared_ptr<job_rec>> queue;
  state st = state::running;
  bool done = false;
  bool ready = false;  // the first workers are started (or failed to)
  std::vector<actor> snapshot;
  std::vector<std::pair<std::uint64_t, exit_reason>> exited;  // workers the root reported dead
  std::atomic<std::uint64_t> inbox_id{0};
  std::atomic<bool> sleeping{false};
  std::uint64_t next_job = 1;
  caf::actor dispatcher;

  // Dispatcher thread only:
  std::vector<worker_rec> workers;
  envelope env_;      // reused for every envelope read
  task_batch batch_;  // reused for every batch sent
  bytes buf_;
  int start_failures = 0;
  std::string broken;

  static caf::behavior behavior_of(caf::event_based_actor* self, std::weak_ptr<pool_core> w) {
    return {[self, w](pool_run_atom) {
      if (auto c = w.lock()) c->run();
      self->quit();
    }};
  }

  void wake() {
    if (!sleeping.exchange(false)) return;
    auto id = inbox_id.load();
    if (id == 0) return;
    try {
      post(id, env_kind::send, 0, type_tag<unit>(), encode(unit{}));
    } catch (...) {}
  }

  actor start_worker() {
    spawn_options so;
    so.method = method;
    so.daemon = true;
    so.sandbox = box;
    std::weak_ptr<pool_core> w = weak_from_this();
    make_process_fn make = make_actor_process(&pool_worker, init);
    actor a = node_spawn(so, make, [w](const actor& who, const exit_reason& why) {
      if (auto c = w.lock()) {
        {
          std::lock_guard lk(c->m);
          c->exited.emplace_back(who.id(), why);
        }
        c->sleeping.store(true);
        c->wake();
      }
    });
    // A worker counts once its initializer has run (Python's pool would
    // respawn a failing initializer forever).
    if (auto failed = node_wait_started(a.id(), clock::now() + std::chrono::seconds(30)))
      throw isola::error("a worker failed to start: " + failed->to_string());
    return a;
  }

  void refresh_snapshot() {
    std::vector<actor> s;
    for (auto& w : workers)
      if (!w.dead) s.push_back(w.a);
    std::lock_guard lk(m);
    snapshot = std::move(s);
  }

  void fill_workers() {
    for (auto& w : workers) {
      if (!w.dead) continue;
      if (!w.inflight.empty()) continue;  // its failures are handled first
      if (!broken.empty()) continue;
      try {
        worker_rec fresh;
        fresh.a = start_worker();  // throws: w stays dead
        w = std::move(fresh);
        start_failures = 0;
      } catch (const std::exception& ex) {
        if (++start_failures >= 3) broken = std::string("cannot start workers: ") + ex.what();
      }
    }
    refresh_snapshot();
  }

  void fail_job(job_rec& j, std::exception_ptr e) {
    try {
      j.job.on_error(e);
    } catch (...) {}
  }

  /// The worker died: its first task in flight was running.
  void worker_died(worker_rec& w, const exit_reason& r) {
    if (w.inflight.empty()) return;
    const std::uint64_t late = std::exchange(w.timed_out_job, 0);
    if (late != 0) {
      timed_out(w, late);
      return;
    }
    if (break_on_death && broken.empty())
      broken = "a worker (pid " + std::to_string(w.a.pid()) + ") died: " + r.to_string();
    // A worker that ends before it ran anything, with an exception, failed to
    // initialise: more than a few in a row and the pool is broken.
    auto running = std::move(w.inflight.front().job);
    w.inflight.pop_front();
    requeue_after_loss(w, std::move(running), [&](const job_rec& j) {
      std::string what = "worker " + w.a.name() + " (pid " + std::to_string(w.a.pid()) +
                         ") died while running " + j.job.description() + ": " + r.to_string();
      return std::make_exception_ptr(
          isola::worker_died(what, w.a.pid(), exitcode_of(r), j.job.description()));
    });
  }

  /// The worker was killed for running job `late` past task_timeout: that job
  /// fails with timeout_error (or is retried); the worker's other tasks never
  /// started and go back to the queue. If `late` finished just before the
  /// kill landed, the task then running was killed through no fault of its
  /// own: it goes back too, its tries not counted.
  void timed_out(worker_rec& w, std::uint64_t late) {
    std::shared_ptr<job_rec> running;
    if (w.inflight.front().job->id == late) {
      running = std::move(w.inflight.front().job);
      w.inflight.pop_front();
    }
    requeue_after_loss(w, std::move(running), [&](const job_rec& j) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(task_timeout).count();
      return std::make_exception_ptr(
          isola::timeout_error(j.job.description() + " ran past the pool's task_timeout (" +
                               std::to_string(ms) + " ms): its worker " + w.a.name() + " (pid " +
                               std::to_string(w.a.pid()) + ") was killed and is replaced"));
    });
  }

  /// A worker ended with `running` (null: none) unfinished. The tasks behind
  /// it never started and go back to the front of the queue; `running` runs
  /// again if task_retries allow, or fails with what `failure` makes.
  template <class MakeError>
  void requeue_after_loss(worker_rec& w, std::shared_ptr<job_rec> running, MakeError failure) {
    {
      std::lock_guard lk(m);
      for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it)
        queue.push_front(std::move(it->job));
      w.inflight.clear();
      w.batches = 0;
      if (!running) return;
      if (running->tries < retries) {
        ++running->tries;
        queue.push_front(std::move(running));
        return;
      }
    }
    fail_job(*running, failure(*running));
  }

  /// Kills each worker whose running task has passed task_timeout (once).
  void kill_late_workers() {
    if (task_timeout <= clock::duration::zero()) return;
    const auto now = clock::now();
    for (auto& w : workers) {
      if (w.dead || w.inflight.empty() || w.timed_out_job != 0) continue;
      if (now - w.front_since < task_timeout) continue;
      w.timed_out_job = w.inflight.front().job->id;
      get_logger().warning("isola::pool: " + w.inflight.front().job->job.description() +
                           " ran past task_timeout: killing worker " + w.a.name() + " (pid " +
                           std::to_string(w.a.pid()) + ")");
      node_kill(w.a.id(), {exit_reason::kind::shutdown, 0, "task_timeout"});
    }
  }

  /// When the next running task passes task_timeout (max() if none).
  clock::time_point next_task_deadline() const {
    auto t = clock::time_point::max();
    if (task_timeout <= clock::duration::zero()) return t;
    for (auto& w : workers)
      if (!w.dead && !w.inflight.empty() && w.timed_out_job == 0)
        t = std::min(t, w.front_since + task_timeout);
    return t;
  }

  /// A task_result a worker sent: completes the first of its tasks in flight.
  void on_result(std::uint64_t sender, std::span<const std::byte> payload) {
    worker_rec* w = nullptr;
    for (auto& x : workers)
      if (x.a.id() == sender) w = &x;
    if (!w) return;  // a worker replaced meanwhile: its tasks were requeued
    task_result res;
    try {
      decode_into(payload, res);
    } catch (const std::exception& ex) {
      get_logger().error(std::string("isola::pool: a malformed task result: ") + ex.what());
      return;
    }
    auto it = std::find_if(w->inflight.begin(), w->inflight.end(),
                           [&](const inflight_rec& r) { return r.job->id == res.id; });
    if (it == w->inflight.end()) return;
    auto j = std::move(it->job);
    if (it->ends_batch && w->batches > 0) --w->batches;
    const bool was_running = it == w->inflight.begin();
    w->inflight.erase(it);
    if (was_running) w->front_since = clock::now();  // the next one starts now
    if (res.ok) {
      try {
        j->job.on_value(res.value);
      } catch (...) {}
    } else {
      fail_job(*j, std::make_exception_ptr(
                       remote_error(res.type_name, res.what, w->a.pid(), w->a.name())));
    }
  }

  void handle(const envelope& e) {
    if (e.kind() == env_kind::send && e.h.tag == type_tag<task_result>())
      on_result(e.h.sender, e.payload);
    // Anything else (wake-ups) only ended a wait.
  }

  /// Handles every envelope already in the inbox.
  void drain(inbox& ib) {
    while (ib.try_next_into(env_)) handle(env_);
  }

  void apply_exits(inbox& ib) {
    std::vector<std::pair<std::uint64_t, exit_reason>> ids;
    {
      std::lock_guard lk(m);
      ids.swap(exited);
    }
    if (ids.empty()) return;
    // A worker's results are in the inbox before its death is reported:
    // read them all before deciding which task it was running.
    drain(ib);
    for (auto& [id, why] : ids)
      for (auto& w : workers)
        if (w.a.id() == id && !w.dead) {
          w.dead = true;
          worker_died(w, why);
        }
  }

  void retire() {
    if (maxtasks == 0) return;
    for (auto& w : workers) {
      if (w.dead || !w.a || w.assigned < maxtasks || !w.inflight.empty()) continue;
      stop_actor(w.a.id());
      node_join(w.a.id(), clock::now() + std::chrono::seconds(5));
      if (w.a.alive()) node_kill(w.a.id(), {exit_reason::kind::shutdown, 0, "maxtasksperchild"});
      w.dead = true;
    }
  }

  /// Round-robin, one batch at a time: every idle worker gets work before
  /// any worker gets a second batch (which waits in its mailbox, so that the
  /// worker does not idle under load). A batch is one task until the queue
  /// holds more than two per live worker, then a share of it.
  void assign() {
    std::size_t live = 0;
    for (auto& w : workers) live += w.dead ? 0 : 1;
    if (live == 0) return;
    const auto self = ctx().self();
    for (std::size_t depth = 1; depth <= batches_per_worker; ++depth) {
      for (auto& w : workers) {
        if (w.dead || w.batches >= depth || (maxtasks != 0 && w.assigned >= maxtasks)) continue;
        batch_.tasks.clear();
        std::vector<std::shared_ptr<job_rec>> taken;
        while (taken.empty()) {
          {
            std::lock_guard lk(m);
            if (queue.empty()) return;
            // A second batch waits in a busy worker's mailbox only when there
            // is more work than workers: otherwise it could wait behind a long
            // task while another worker idles.
            if (depth > 1 && queue.size() <= live) return;
            std::size_t k = std::clamp<std::size_t>(queue.size() / (2 * live), 1, max_batch);
            if (maxtasks != 0) k = std::min(k, maxtasks - w.assigned);
            std::size_t bytes_in = 0;
            while (taken.size() < k && !queue.empty() &&
                   (taken.empty() || bytes_in < max_batch_bytes)) {
              bytes_in += queue.front()->job.args.size() + 64;
              taken.push_back(std::move(queue.front()));
              queue.pop_front();
            }
          }
          // Marks their futures running (cancel() no longer applies); a
          // task whose future was cancelled meanwhile is dropped, as Python
          // skips a cancelled work item. Outside m: it takes the future's lock.
          std::erase_if(taken, [](const std::shared_ptr<job_rec>& j) {
            return j->job.on_start && !j->job.on_start();
          });
        }
        for (auto& j : taken)
          batch_.tasks.push_back(task_msg{j->id, j->job.trampoline, j->job.fn, j->job.args});
        batch_.reply_to = self;
        buf_.clear();
        encode_into(batch_, buf_);
        // An idle worker reads its mailbox, so waiting for room is safe (and
        // needed for a batch larger than the mailbox). A busy one may itself
        // be waiting for room in our inbox: never block on it.
        post_result r = post_result::ok;
        if (w.inflight.empty()) {
          if (!post(w.a.id(), env_kind::send, 0, type_tag<task_batch>(), buf_))
            r = post_result::dead;
        } else {
          r = try_post(w.a.id(), env_kind::send, 0, type_tag<task_batch>(), buf_);
        }
        if (r != post_result::ok) {
          std::lock_guard lk(m);
          for (auto it = taken.rbegin(); it != taken.rend(); ++it) queue.push_front(std::move(*it));
          if (r == post_result::full) return;  // tried again after the next results
          continue;                            // dead: its exit notice is on the way
        }
        if (w.inflight.empty()) w.front_since = clock::now();
        for (std::size_t i = 0; i < taken.size(); ++i)
          w.inflight.push_back({std::move(taken[i]), i + 1 == taken.size()});
        ++w.batches;
        w.assigned += taken.size();
      }
    }
  }

  bool all_idle() const {
    for (auto& w : workers)
      if (!w.inflight.empty()) return false;
    return true;
  }

  void finish_all(std::exception_ptr e) {
    std::deque<std::shared_ptr<job_rec>> rest;
    {
      std::lock_guard lk(m);
      rest.swap(queue);
    }
    for (auto& w : workers)
      for (auto& r : w.inflight) rest.push_back(r.job);
    for (auto& w : workers) {
      w.inflight.clear();
      w.batches = 0;
    }
    for (auto& j : rest) fail_job(*j, e);
  }

  void run() {
    try {
      loop();
    } catch (const std::exception& ex) {
      get_logger().error(std::string("isola::pool: the dispatcher failed: ") + ex.what());
      {
        std::lock_guard lk(m);
        st = state::terminated;  // no more submissions
      }
      finish_all(
          std::make_exception_ptr(isola::error(std::string("the pool failed: ") + ex.what())));
      for (auto& w : workers)
        if (!w.dead) node_kill(w.a.id(), {exit_reason::kind::shutdown, 0, "pool failed"});
    }
    {
      std::lock_guard lk(m);
      done = true;
      ready = true;
      snapshot.clear();
    }
    cv.notify_all();
  }

  void loop() {
    auto ib = ctx().my_inbox();
    ib->set_keep_others(true);  // the workers' task_results
    inbox_id = ib->id();
    workers.resize(n);
    for (auto& w : workers) w.dead = true;  // fill_workers starts them
    fill_workers();
    {
      std::lock_guard lk(m);
      ready = true;
    }
    cv.notify_all();
    for (;;) {
      state s;
      {
        std::lock_guard lk(m);
        s = st;
        if (!stopped_by.empty() && broken.empty()) broken = stopped_by;
      }
      if (s == state::terminated) {
        for (auto& w : workers)
          if (!w.dead && w.a)
            node_kill(w.a.id(), {exit_reason::kind::shutdown, 0, "pool terminated"});
        for (auto& w : workers)
          if (!w.dead && w.a) node_join(w.a.id(), clock::now() + std::chrono::seconds(5));
        finish_all(std::make_exception_ptr(cancelled_error("the pool was terminated")));
        return;
      }
      drain(*ib);
      apply_exits(*ib);
      kill_late_workers();
      if (!broken.empty())
        finish_all(std::make_exception_ptr(isola::error("the pool is broken: " + broken)));
      retire();
      fill_workers();
      if (s == state::closed && all_idle()) {
        bool empty;
        {
          std::lock_guard lk(m);
          empty = queue.empty();
        }
        if (empty || !broken.empty()) {
          for (auto& w : workers)
            if (!w.dead) stop_actor(w.a.id());
          for (auto& w : workers)
            if (!w.dead && !node_join(w.a.id(), clock::now() + std::chrono::seconds(10)))
              node_kill(w.a.id(), {exit_reason::kind::shutdown, 0, "pool join"});
          return;
        }
      }
      assign();
      std::size_t seen;
      {
        std::lock_guard lk(m);
        seen = queue.size();
      }
      sleeping.store(true);
      {
        // A submission that came after assign() and before `sleeping` was
        // set would not wake us: look again instead of sleeping.
        std::lock_guard lk(m);
        if (queue.size() != seen) {
          sleeping.store(false);
          continue;
        }
        if (st != s || !exited.empty()) {
          sleeping.store(false);
          continue;
        }
      }
      const auto wake_at =
          std::min(clock::now() + std::chrono::milliseconds(20), next_task_deadline());
      if (ib->next_into(env_, wake_at)) handle(env_);
      sleeping.store(false);
    }
  }
};

std::shared_ptr<pool_core> make_pool(unsigned processes, std::optional<start_method> method,
                                     std::size_t maxtasksperchild, unsigned task_retries,
                                     worker_init init, bool break_on_worker_death,
                                     duration task_timeout, std::optional<isola::sandbox> box) {
  if (in_actor_process()) throw value_error("isola::pool: pools run in the root process");
  if (task_timeout < duration::zero())
    throw value_error("isola::pool: task_timeout must not be negative (zero: none)");
  if (method && *method == start_method::fork)
    throw start_method_error(
        "isola::pool: workers never start with fork (the root runs CAF threads); use forkserver "
        "(the default) or spawn");
  auto c = std::make_shared<pool_core>();
  c->n = processes ? processes : std::max(1u, cpu_count());
  c->method = method;
  c->maxtasks = maxtasksperchild;
  c->retries = task_retries;
  c->task_timeout =
      task_timeout >= std::chrono::duration_cast<duration>(std::chrono::hours(24 * 365))
          ? clock::duration::zero()
          : std::chrono::duration_cast<clock::duration>(task_timeout);
  c->init = std::move(init);
  c->box = std::move(box);
  c->break_on_death = break_on_worker_death;
  c->dispatcher =
      node_system().spawn<caf::detached>(&pool_core::behavior_of, std::weak_ptr<pool_core>(c));
  caf::anon_send(c->dispatcher, pool_run_atom::value);
  // As Python's Pool(): the workers exist when the constructor returns.
  std::unique_lock lk(c->m);
  c->cv.wait(lk, [&] { return c->ready || c->done; });
  return c;
}

void pool_submit(pool_core& p, std::vector<pool_job> jobs) {
  require_actor_system_here("isola::pool");  // a fork child's copy: no dispatcher
  {
    std::lock_guard lk(p.m);
    if (p.st != pool_core::state::running)
      throw value_error("Pool not running (it was closed or terminated)");
    for (auto& j : jobs) {
      auto r = std::make_shared<pool_core::job_rec>();
      r->job = std::move(j);
      r->id = p.next_job++;
      p.queue.push_back(std::move(r));
    }
  }
  p.wake();
}

void pool_cancel_pending(pool_core& p) {
  require_actor_system_here("isola::pool");  // a fork child's copy: no dispatcher
  std::deque<std::shared_ptr<pool_core::job_rec>> rest;
  {
    std::lock_guard lk(p.m);
    rest.swap(p.queue);
  }
  for (auto& j : rest)
    p.fail_job(
        *j, std::make_exception_ptr(cancelled_error("cancelled by shutdown(cancel_futures=true)")));
}

void pool_stop_workers(pool_core& p, int sig) {
  pool_cancel_pending(p);
  std::vector<actor> ws;
  {
    std::lock_guard lk(p.m);
    if (p.st == pool_core::state::running) p.st = pool_core::state::closed;
    if (p.stopped_by.empty())
      p.stopped_by =
          sig == SIGKILL ? "kill_workers() was called" : "terminate_workers() was called";
    ws = p.snapshot;
  }
  p.sleeping.store(true);
  p.wake();
  // By the root's id, not the pid: a worker that ended meanwhile is not
  // confused with a process that reuses its pid.
  for (auto& w : ws) node_signal(w.id(), sig);
}

void log_callback_failure(std::exception_ptr e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    try {
      get_logger().error(std::string("isola::pool: a callback threw: ") + ex.what());
    } catch (...) {}
  } catch (...) {
    try {
      get_logger().error("isola::pool: a callback threw a non-standard exception");
    } catch (...) {}
  }
}

void pool_close(pool_core& p) {
  require_actor_system_here("isola::pool");  // a fork child's copy: no dispatcher
  {
    std::lock_guard lk(p.m);
    if (p.st == pool_core::state::running) p.st = pool_core::state::closed;
  }
  p.sleeping.store(true);
  p.wake();
}

void pool_terminate(pool_core& p) noexcept {
  // A fork child's copy (its dispatcher stayed in the parent): the parent's
  // pool is the parent's to end, and waiting here would never return.
  if (actor_system_inherited()) return;
  {
    std::lock_guard lk(p.m);
    if (p.done) return;
    p.st = pool_core::state::terminated;
  }
  p.sleeping.store(true);
  p.wake();
  std::unique_lock lk(p.m);
  p.cv.wait(lk, [&] { return p.done; });
}

void pool_join(pool_core& p) {
  require_actor_system_here("isola::pool");  // a fork child's copy: no dispatcher
  std::unique_lock lk(p.m);
  if (p.st == pool_core::state::running)
    throw value_error("Pool is still running (close() or terminate() first)");
  p.cv.wait(lk, [&] { return p.done; });
}

unsigned pool_processes(const pool_core& p) { return p.n; }

std::vector<actor> pool_workers(const pool_core& p) {
  std::lock_guard lk(p.m);
  return p.snapshot;
}

std::size_t default_chunksize(std::size_t n, unsigned processes) {
  if (n == 0) return 1;
  std::size_t d = std::size_t{processes} * 4;
  std::size_t c = n / d;
  if (n % d) ++c;
  return std::max<std::size_t>(c, 1);
}

}  // namespace isola::detail
