// The pool: worker actors and a dispatcher. See isola/pool.hpp.
//
// The dispatcher is a detached CAF actor whose one message runs its loop:
// it owns the workers and the tasks in flight, hands each worker at most two
// tasks (one running, one waiting in its mailbox, so that a worker never
// idles between tasks), reads the replies from its own inbox, and learns of a
// dead worker from the failure of its pending requests (actor_exited, within
// milliseconds of the death) or from the root's exit notice. Because a
// worker's mailbox is FIFO, the first task in flight on a dead worker is the
// one it was running: that task fails (worker_died) or is retried; the
// others never started and go back to the front of the queue.
#include <caf/all.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <typeinfo>

#include "core.hpp"
#include "isola/logging.hpp"
#include "isola/pool.hpp"
#include "node.hpp"

namespace isola::detail {

namespace {

using pool_run_atom = caf::atom_constant<caf::atom("isolapool")>;
constexpr std::size_t per_worker = 2;

int exitcode_of(const exit_reason& r) {
  switch (r.what) {
    case exit_reason::kind::normal:
    case exit_reason::kind::shutdown: return 0;
    case exit_reason::kind::exit_code: return r.code;
    case exit_reason::kind::signal: return -r.code;
    case exit_reason::kind::linked: return -9;
    case exit_reason::kind::exception: return 1;
    case exit_reason::kind::unknown: return 255;
  }
  return 255;
}
}  // namespace

behavior pool_worker(worker_init init) {
  if (init.has) {
    auto t = reinterpret_cast<task_trampoline>(const_cast<void*>(init.trampoline.fn));
    t(init.fn.fn, init.args);  // throws: the worker fails to start, and the pool is told
  }
  return {[](const task_msg& t) -> task_result {
    task_result r;
    r.id = t.id;
    try {
      auto tr = reinterpret_cast<task_trampoline>(const_cast<void*>(t.trampoline.fn));
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
  }};
}

struct pool_core : std::enable_shared_from_this<pool_core> {
  struct job_rec {
    pool_job job;
    std::uint64_t id = 0;
    unsigned tries = 0;
  };
  struct worker_rec {
    actor a;
    std::deque<std::pair<std::shared_ptr<job_rec>, future<task_result>>> inflight;
    std::size_t assigned = 0;
    bool dead = false;
  };
  enum class state { running, closed, terminated };

  unsigned n = 1;
  std::optional<start_method> method;
  std::size_t maxtasks = 0;
  unsigned retries = 0;
  worker_init init;
  bool break_on_death = false;  // Python's BrokenProcessPool behaviour

  mutable std::mutex m;
  std::condition_variable cv;
  std::deque<std::shared_ptr<job_rec>> queue;
  state st = state::running;
  bool done = false;
  bool ready = false;  // the first workers are started (or failed to)
  std::vector<actor> snapshot;
  std::vector<std::uint64_t> exited;  // worker ids the root reported dead
  std::atomic<std::uint64_t> inbox_id{0};
  std::atomic<bool> sleeping{false};
  std::uint64_t next_job = 1;
  caf::actor dispatcher;

  // Dispatcher thread only:
  std::vector<worker_rec> workers;
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
    } catch (...) {
    }
  }

  actor start_worker() {
    spawn_options so;
    so.method = method;
    so.daemon = true;
    std::weak_ptr<pool_core> w = weak_from_this();
    make_process_fn make = [init = init](const actor_boot& boot, const process_options& po) {
      using entry = int (*)(actor_boot, function_address, worker_init);
      entry e = &actor_entry_fn<behavior (*)(worker_init), worker_init>;
      return process(po, e, boot, function_address{reinterpret_cast<const void*>(&pool_worker)}, init);
    };
    actor a = node_spawn(so, make, [w](const actor& who, const exit_reason&) {
      if (auto c = w.lock()) {
        {
          std::lock_guard lk(c->m);
          c->exited.push_back(who.id());
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
        w = worker_rec{start_worker(), {}, 0, false};
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
    } catch (...) {
    }
  }

  /// The worker died: its first task in flight was running.
  void worker_died(worker_rec& w) {
    if (w.inflight.empty()) return;
    auto r = node_reason(w.a.id()).value_or(exit_reason{exit_reason::kind::unknown, 0, {}});
    if (break_on_death && broken.empty())
      broken = "a worker (pid " + std::to_string(w.a.pid()) + ") died: " + r.to_string();
    // A worker that ends before it ran anything, with an exception, failed to
    // initialise: more than a few in a row and the pool is broken.
    auto running = std::move(w.inflight.front().first);
    w.inflight.pop_front();
    std::lock_guard lk(m);
    for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it) queue.push_front(std::move(it->first));
    w.inflight.clear();
    if (running->tries < retries) {
      ++running->tries;
      queue.push_front(std::move(running));
      return;
    }
    std::string what = "worker " + w.a.name() + " (pid " + std::to_string(w.a.pid()) +
                       ") died while running " + running->job.description + ": " + r.to_string();
    auto e = std::make_exception_ptr(isola::worker_died(what, w.a.pid(), exitcode_of(r), running->job.description));
    m.unlock();
    fail_job(*running, e);
    m.lock();
  }

  void collect() {
    for (auto& w : workers) {
      while (!w.inflight.empty()) {
        auto& [job, fut] = w.inflight.front();
        auto s = fut.state_ptr();
        std::exception_ptr err;
        {
          std::lock_guard lk(s->m);
          if (!s->done) break;
          err = s->error;
        }
        if (err) {
          // The request failed: the worker is gone (actor_exited) or unreachable.
          w.dead = true;
          worker_died(w);
          break;
        }
        auto res = std::move(*s->value);
        auto j = std::move(job);
        w.inflight.pop_front();
        if (res.ok) {
          try {
            j->job.on_value(res.value);
          } catch (...) {
          }
        } else {
          fail_job(*j, std::make_exception_ptr(remote_error(res.type_name, res.what, w.a.pid(), w.a.name())));
        }
      }
    }
  }

  void apply_exits() {
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lk(m);
      ids.swap(exited);
    }
    for (auto id : ids)
      for (auto& w : workers)
        if (w.a.id() == id) w.dead = true;  // its pending requests fail on their own
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

  /// Round-robin, one slot at a time: every idle worker gets a task before
  /// any worker gets a second one (which waits in its mailbox, so that the
  /// worker does not idle between tasks under load).
  void assign() {
    std::size_t live = 0;
    for (auto& w : workers) live += w.dead ? 0 : 1;
    for (std::size_t depth = 1; depth <= per_worker; ++depth) {
      for (auto& w : workers) {
        if (w.dead || w.inflight.size() >= depth || (maxtasks != 0 && w.assigned >= maxtasks)) continue;
        std::shared_ptr<job_rec> j;
        {
          std::lock_guard lk(m);
          if (queue.empty()) return;
          // A second task waits in a busy worker's mailbox only when there is
          // more work than workers: otherwise it could wait behind a long
          // task while another worker idles.
          if (depth > 1 && queue.size() <= live) return;
          j = std::move(queue.front());
          queue.pop_front();
        }
        task_msg t{j->id, j->job.trampoline, j->job.fn, j->job.args};
        auto f = w.a.request<task_result>(t);
        w.inflight.emplace_back(std::move(j), std::move(f));
        ++w.assigned;
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
      for (auto& [j, f] : w.inflight) rest.push_back(j);
    for (auto& w : workers) w.inflight.clear();
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
      finish_all(std::make_exception_ptr(isola::error(std::string("the pool failed: ") + ex.what())));
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
      }
      if (s == state::terminated) {
        for (auto& w : workers)
          if (!w.dead && w.a) node_kill(w.a.id(), {exit_reason::kind::shutdown, 0, "pool terminated"});
        for (auto& w : workers)
          if (!w.dead && w.a) node_join(w.a.id(), clock::now() + std::chrono::seconds(5));
        finish_all(std::make_exception_ptr(cancelled_error("the pool was terminated")));
        return;
      }
      apply_exits();
      collect();
      if (!broken.empty()) finish_all(std::make_exception_ptr(isola::error("the pool is broken: " + broken)));
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
      ib->pump(clock::now() + std::chrono::milliseconds(20));
      sleeping.store(false);
    }
  }

};

std::shared_ptr<pool_core> make_pool(unsigned processes, std::optional<start_method> method,
                                     std::size_t maxtasksperchild, unsigned task_retries,
                                     worker_init init, bool break_on_worker_death) {
  if (in_actor_process()) throw value_error("isola::pool: pools run in the root process");
  if (method && *method == start_method::fork)
    throw start_method_error(
        "isola::pool: workers never start with fork (the root runs CAF threads); use forkserver "
        "(the default) or spawn");
  auto c = std::make_shared<pool_core>();
  c->n = processes ? processes : std::max(1u, cpu_count());
  c->method = method;
  c->maxtasks = maxtasksperchild;
  c->retries = task_retries;
  c->init = std::move(init);
  c->break_on_death = break_on_worker_death;
  c->dispatcher = node_system().spawn<caf::detached>(&pool_core::behavior_of, std::weak_ptr<pool_core>(c));
  caf::anon_send(c->dispatcher, pool_run_atom::value);
  // As Python's Pool(): the workers exist when the constructor returns.
  std::unique_lock lk(c->m);
  c->cv.wait(lk, [&] { return c->ready || c->done; });
  return c;
}

void pool_submit(pool_core& p, std::vector<pool_job> jobs) {
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
  std::deque<std::shared_ptr<pool_core::job_rec>> rest;
  {
    std::lock_guard lk(p.m);
    rest.swap(p.queue);
  }
  for (auto& j : rest) p.fail_job(*j, std::make_exception_ptr(cancelled_error("cancelled by shutdown(cancel_futures=true)")));
}

void pool_close(pool_core& p) {
  {
    std::lock_guard lk(p.m);
    if (p.st == pool_core::state::running) p.st = pool_core::state::closed;
  }
  p.sleeping.store(true);
  p.wake();
}

void pool_terminate(pool_core& p) noexcept {
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
  std::unique_lock lk(p.m);
  if (p.st == pool_core::state::running) throw value_error("Pool is still running (close() or terminate() first)");
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
