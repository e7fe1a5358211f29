// Supervisors: each one a detached CAF actor in the root. All decisions
// (starting, stopping, restarting children) run on that actor, in the order
// its messages arrive; child exits reach it from the multiplexer thread and
// API calls from user threads, both as `run` messages that drain a queue of
// operations held beside it.
#include "isola/supervisor.hpp"

#include <caf/all.hpp>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>

#include "core/mailbox.hpp"
#include "isola/logging.hpp"
#include "root/registry.hpp"

namespace isola {
namespace detail {

using run_atom = caf::atom_constant<caf::atom("isolarun")>;

// Whether an actor child's incarnation still runs: its process has not
// ended, even if the root has not handled its exit yet (that exit, then the
// restart, are on their way to this supervisor).
bool incarnation_alive(const actor& a) {
  try {
    return a && !node_process_ended(a.id());
  } catch (const error&) {
    return false;
  }
}

struct nested_spec {
  supervisor_options opts;
  std::vector<child_spec> children;
};

struct sup_core : std::enable_shared_from_this<sup_core> {
  struct child_rec {
    child_spec spec;
    bool running = false;
    actor current;                  // actor children
    std::shared_ptr<sup_core> sub;  // supervisor children
  };

  supervisor_options opts;
  std::weak_ptr<sup_core> parent;
  caf::actor self;

  mutable std::mutex m;  // guards everything below (mutated on the actor's thread only)
  std::condition_variable cv;
  std::vector<child_rec> children;
  std::deque<std::function<void()>> ops;
  std::deque<clock::time_point> recent;
  std::set<std::uint64_t> expected;  // exits we caused: not restarted
  std::size_t restart_total = 0;
  bool ended = false;
  bool shutting_down = false;  // the root is ending: stop, never restart
  exit_reason why;

  // ------------------------------------------------------------ plumbing
  void post(std::function<void()> op) {
    {
      std::lock_guard lk(m);
      ops.push_back(std::move(op));
    }
    caf::anon_send(self, run_atom::value);
  }

  void drain() {
    for (;;) {
      std::function<void()> op;
      {
        std::lock_guard lk(m);
        if (ops.empty()) return;
        op = std::move(ops.front());
        ops.pop_front();
      }
      op();
    }
  }

  /// Runs f on the supervisor's actor and waits for its result.
  template <class F>
  auto call(F f) -> decltype(f()) {
    using R = decltype(f());
    auto pr = std::make_shared<std::promise<R>>();
    auto fut = pr->get_future();
    post([pr, f = std::move(f)]() mutable {
      try {
        if constexpr (std::is_void_v<R>) {
          f();
          pr->set_value();
        } else {
          pr->set_value(f());
        }
      } catch (...) {
        pr->set_exception(std::current_exception());
      }
    });
    return fut.get();
  }

  child_rec* find_locked(const std::string& name) {
    for (auto& c : children)
      if (c.spec.name() == name) return &c;
    return nullptr;
  }

  // ------------------------------------------------------------ starting
  static caf::behavior behavior_of(caf::event_based_actor*, std::weak_ptr<sup_core> w) {
    return {[w](run_atom) {
      if (auto c = w.lock()) c->drain();
    }};
  }

  static std::shared_ptr<sup_core> create(supervisor_options o, std::weak_ptr<sup_core> parent) {
    auto c = std::make_shared<sup_core>();
    c->opts = std::move(o);
    c->parent = std::move(parent);
    // The core travels as a spawn argument: CAF 0.17 dereferences a null
    // argument tuple when there is none (UBSan reports it).
    c->self =
        node_system().spawn<caf::detached>(&sup_core::behavior_of, std::weak_ptr<sup_core>(c));
    return c;
  }

  /// On the actor: starts one child (throws if it cannot start).
  void start(child_rec& c) {
    if (c.spec.nested_) {
      auto sub = create(c.spec.nested_->opts, weak_from_this());
      auto specs = c.spec.nested_->children;
      sub->call([&] { sub->start_all(std::move(specs)); });
      std::lock_guard lk(m);
      c.sub = std::move(sub);
      c.running = true;
      return;
    }
    spawn_options so;
    so.name = c.spec.name();
    so.method = c.spec.method_;
    so.daemon = c.spec.daemon_;
    so.sandbox = c.spec.sandbox_;
    std::weak_ptr<sup_core> w = weak_from_this();
    actor a = node_spawn(so, c.spec.make_, [w](const actor& who, const exit_reason& r) {
      if (auto s = w.lock()) s->post([s, who, r] { s->child_exited(who.id(), r); });
    });
    // As OTP's start_link: the child counts as started once its behavior is
    // built; if building it fails, starting it fails.
    if (auto failed = node_wait_started(a.id(), clock::now() + std::chrono::seconds(30))) {
      {
        std::lock_guard lk(m);
        expected.insert(a.id());
      }
      node_kill(a.id(), *failed);
      throw process_error("supervisor " + opts.name + ": child " + c.spec.name() +
                          " failed to start: " + failed->to_string());
    }
    std::lock_guard lk(m);
    c.current = a;
    c.running = true;
  }

  void start_all(std::vector<child_spec> specs) {
    for (auto& s : specs) {
      {
        std::lock_guard lk(m);
        if (find_locked(s.name()))
          throw value_error("supervisor " + opts.name + ": two children named '" + s.name() + "'");
        children.push_back({std::move(s), false, {}, {}});
      }
      try {
        start(children.back());
      } catch (...) {
        stop_all();
        std::lock_guard lk(m);
        children.clear();
        throw;
      }
    }
  }

  // ------------------------------------------------------------ stopping
  /// On the actor: stops one running child with the escalation of its spec.
  void stop_child(child_rec& c, bool root_ending) {
    if (!c.running) return;
    if (c.sub) {
      auto sub = c.sub;
      sub->call([&] { sub->finish({exit_reason::kind::shutdown, 0, {}}, root_ending); });
      std::lock_guard lk(m);
      c.running = false;
      c.sub.reset();
      return;
    }
    std::uint64_t id = c.current.id();
    {
      std::lock_guard lk(m);
      expected.insert(id);
    }
    exit_reason why{exit_reason::kind::shutdown, 0, {}};
    auto step = std::chrono::duration_cast<clock::duration>(c.spec.shutdown_);
    if (root_ending && !c.spec.daemon_) {
      // Python's non-daemon semantics: ask, then join however long it takes.
      stop_actor(id);
      node_join(id, std::nullopt);
    } else if (step.count() <= 0) {
      node_kill(id, why);
      node_join(id, std::nullopt);
    } else {
      stop_actor(id);
      if (!node_join(id, clock::now() + step)) {
        node_terminate(id, why);
        if (!node_join(id, clock::now() + step)) {
          node_kill(id, why);
          node_join(id, std::nullopt);
        }
      }
    }
    std::lock_guard lk(m);
    c.running = false;
    c.current = actor();
  }

  void stop_all(bool root_ending = false) {
    for (auto it = children.rbegin(); it != children.rend(); ++it) {
      try {
        stop_child(*it, root_ending);
      } catch (const std::exception& ex) {
        get_logger().error("supervisor " + opts.name + ": stopping " + it->spec.name() + ": " +
                           ex.what());
      }
    }
  }

  /// On the actor: stops everything and ends with reason r.
  void finish(exit_reason r, bool root_ending = false) {
    {
      std::lock_guard lk(m);
      if (ended) return;
      shutting_down = true;
    }
    stop_all(root_ending);
    {
      std::lock_guard lk(m);
      ended = true;
      why = r;
    }
    cv.notify_all();
    if (auto p = parent.lock()) {
      auto me = shared_from_this();
      p->post([p, me, r] { p->sub_exited(me, r); });
    }
  }

  // ------------------------------------------------------------ restarting
  /// On the actor: an actor child ended.
  void child_exited(std::uint64_t id, const exit_reason& r) {
    std::size_t index = children.size();
    {
      std::lock_guard lk(m);
      if (expected.erase(id) || ended || shutting_down) return;
      for (std::size_t i = 0; i < children.size(); ++i)
        if (children[i].running && !children[i].sub && children[i].current.id() == id) index = i;
      if (index == children.size()) return;  // not (any longer) ours
      children[index].running = false;
      children[index].current = actor();
    }
    get_logger().info("supervisor " + opts.name + ": child " + children[index].spec.name() +
                      " exited: " + r.to_string());
    after_exit(index, r);
  }

  /// On the actor: a supervisor child ended on its own (gave up).
  void sub_exited(const std::shared_ptr<sup_core>& sub, const exit_reason& r) {
    std::size_t index = children.size();
    {
      std::lock_guard lk(m);
      if (ended || shutting_down) return;
      for (std::size_t i = 0; i < children.size(); ++i)
        if (children[i].sub == sub) index = i;
      if (index == children.size() || !children[index].running) return;  // we stopped it
      children[index].running = false;
      children[index].sub.reset();
    }
    get_logger().info("supervisor " + opts.name + ": child supervisor " +
                      children[index].spec.name() + " exited: " + r.to_string());
    after_exit(index, r);
  }

  void after_exit(std::size_t index, const exit_reason& r) {
    restart type = children[index].spec.restart_type();
    bool again = type == restart::permanent || (type == restart::transient && r.abnormal());
    // A nested supervisor that gave up ends with reason shutdown; OTP restarts
    // a permanent one (and counts it), which is how a failure escalates.
    if (!again) {
      if (type == restart::temporary) {
        std::lock_guard lk(m);
        children.erase(children.begin() + static_cast<std::ptrdiff_t>(index));
      }
      return;
    }
    if (!note_restart()) {
      get_logger().error("supervisor " + opts.name + ": reached its maximum restart intensity (" +
                         std::to_string(opts.intensity) + " restarts in " +
                         std::to_string(opts.period.count()) + " s); shutting down");
      finish({exit_reason::kind::shutdown, 0,
              "reached max restart intensity after " + children[index].spec.name() +
                  " exited: " + r.to_string()});
      return;
    }
    std::size_t first = index;
    if (opts.strategy != strategy::one_for_one) {
      std::size_t from = opts.strategy == strategy::one_for_all ? 0 : index + 1;
      for (std::size_t i = children.size(); i-- > from;)
        if (i != index) stop_child(children[i], false);
      if (opts.strategy == strategy::one_for_all) first = 0;
      // temporary children stopped by the strategy are not restarted (OTP)
      std::lock_guard lk(m);
      for (std::size_t i = children.size(); i-- > first;)
        if (i != index && children[i].spec.restart_type() == restart::temporary &&
            !children[i].running) {
          children.erase(children.begin() + static_cast<std::ptrdiff_t>(i));
          if (i < index) --index;
        }
    }
    std::size_t last = opts.strategy == strategy::one_for_one ? index + 1 : children.size();
    for (std::size_t i = first; i < last && i < children.size(); ++i) {
      if (children[i].running) continue;
      if (i != index && opts.strategy == strategy::one_for_one) continue;
      try {
        start(children[i]);
        std::lock_guard lk(m);
        ++restart_total;
      } catch (const std::exception& ex) {
        get_logger().error("supervisor " + opts.name + ": restarting " + children[i].spec.name() +
                           " failed: " + ex.what());
        // A failed restart counts as another exit of that child.
        auto me = shared_from_this();
        exit_reason fail{exit_reason::kind::exception, 0, ex.what()};
        post([me, i, fail] {
          if (!me->ended && i < me->children.size() && !me->children[i].running)
            me->after_exit(i, fail);
        });
        return;
      }
    }
  }

  /// Records a restart; false if that exceeds the intensity.
  bool note_restart() {
    auto now = clock::now();
    auto window = std::chrono::duration_cast<clock::duration>(opts.period);
    std::lock_guard lk(m);
    recent.push_back(now);
    while (!recent.empty() && now - recent.front() > window) recent.pop_front();
    return static_cast<int>(recent.size()) <= opts.intensity;
  }
};

namespace {
std::mutex roots_m;
std::vector<std::weak_ptr<sup_core>>& roots() {
  static auto* v = new std::vector<std::weak_ptr<sup_core>>;
  return *v;
}
void stop_roots_at_exit() {
  std::vector<std::shared_ptr<sup_core>> live;
  {
    std::lock_guard lk(roots_m);
    for (auto& w : roots())
      if (auto c = w.lock()) live.push_back(c);
    roots().clear();
  }
  for (auto it = live.rbegin(); it != live.rend(); ++it) {
    auto c = *it;
    try {
      c->call([c] { c->finish({exit_reason::kind::shutdown, 0, "the root is ending"}, true); });
    } catch (...) {}
  }
}
}  // namespace

}  // namespace detail

child_spec child_spec::supervisor(std::string name, supervisor_options opts,
                                  std::vector<child_spec> children) {
  child_spec s;
  s.name_ = std::move(name);
  s.nested_ = std::make_shared<detail::nested_spec>(
      detail::nested_spec{std::move(opts), std::move(children)});
  s.shutdown_ = duration::max();
  return s;
}

supervisor::supervisor(supervisor_options opts, std::vector<child_spec> children) {
  if (detail::in_actor_process())
    throw value_error("isola::supervisor: supervisors run in the root process");
  core_ = detail::sup_core::create(std::move(opts), {});
  auto c = core_;
  c->call([c, &children] { c->start_all(std::move(children)); });
  static std::once_flag hook;
  std::call_once(hook, [] { detail::node_on_shutdown(&detail::stop_roots_at_exit); });
  std::lock_guard lk(detail::roots_m);
  detail::roots().push_back(core_);
}

supervisor::supervisor(std::shared_ptr<detail::sup_core> core, bool owns)
    : core_(std::move(core)), owns_(owns) {}

supervisor::~supervisor() {
  if (core_ && owns_) {
    try {
      stop();
    } catch (...) {}
  }
}

supervisor::supervisor(supervisor&& o) noexcept : core_(std::move(o.core_)), owns_(o.owns_) {}
supervisor& supervisor::operator=(supervisor&& o) noexcept {
  if (this != &o) {
    if (core_ && owns_) {
      try {
        stop();
      } catch (...) {}
    }
    core_ = std::move(o.core_);
    owns_ = o.owns_;
  }
  return *this;
}

namespace {
detail::sup_core& live(const std::shared_ptr<detail::sup_core>& c) {
  if (!c) throw value_error("isola::supervisor: empty (moved-from) handle");
  // A fork child's copy: the supervisor's CAF actor stayed in the parent.
  detail::require_actor_system_here("isola::supervisor");
  return *c;
}
void check_running(detail::sup_core& c) {
  std::lock_guard lk(c.m);
  if (c.ended) throw value_error("supervisor " + c.opts.name + " has ended: " + c.why.to_string());
}
}  // namespace

actor supervisor::start_child(child_spec spec) {
  auto& c = live(core_);
  return c.call([&c, &spec]() -> actor {
    check_running(c);
    {
      std::lock_guard lk(c.m);
      if (c.find_locked(spec.name()))
        throw value_error("supervisor " + c.opts.name + " already has a child named '" +
                          spec.name() + "'");
      c.children.push_back({std::move(spec), false, {}, {}});
    }
    try {
      c.start(c.children.back());
    } catch (...) {
      std::lock_guard lk(c.m);
      c.children.pop_back();
      throw;
    }
    return c.children.back().current;
  });
}

void supervisor::terminate_child(const std::string& name) {
  auto& c = live(core_);
  c.call([&c, &name] {
    auto* r = c.find_locked(name);  // children change only on this thread
    if (!r) throw value_error("supervisor " + c.opts.name + " has no child named '" + name + "'");
    c.stop_child(*r, false);
    if (r->spec.restart_type() == restart::temporary) {
      std::lock_guard lk(c.m);
      std::erase_if(c.children, [&](auto& x) { return &x == r; });
    }
  });
}

actor supervisor::restart_child(const std::string& name) {
  auto& c = live(core_);
  return c.call([&c, &name]() -> actor {
    check_running(c);
    auto* r = c.find_locked(name);
    if (!r) throw value_error("supervisor " + c.opts.name + " has no child named '" + name + "'");
    if (r->running) throw value_error("child '" + name + "' is running");
    c.start(*r);
    return r->current;
  });
}

void supervisor::delete_child(const std::string& name) {
  auto& c = live(core_);
  c.call([&c, &name] {
    std::lock_guard lk(c.m);
    auto* r = c.find_locked(name);
    if (!r) throw value_error("supervisor " + c.opts.name + " has no child named '" + name + "'");
    if (r->running) throw value_error("child '" + name + "' is running; terminate_child first");
    std::erase_if(c.children, [&](auto& x) { return &x == r; });
  });
}

std::optional<actor> supervisor::find(const std::string& name) const {
  auto& c = live(core_);
  // Through the supervisor's queue, so that exits it was told of are applied.
  // An incarnation that has ended but whose exit has not reached the
  // supervisor yet (it is on its way, then the restart) is not returned:
  // OTP's which_children says `restarting` (no pid) until the new one runs.
  return c.call([&c, &name]() -> std::optional<actor> {
    std::lock_guard lk(c.m);
    auto* r = c.find_locked(name);
    if (!r || !r->running || r->sub || !detail::incarnation_alive(r->current)) return std::nullopt;
    return r->current;
  });
}

supervisor supervisor::child_supervisor(const std::string& name) const {
  auto& c = live(core_);
  std::lock_guard lk(c.m);
  auto* r = c.find_locked(name);
  if (!r || !r->sub)
    throw value_error("supervisor " + c.opts.name + " has no running child supervisor '" + name +
                      "'");
  return supervisor(r->sub, false);
}

std::vector<child_info> supervisor::which_children() const {
  auto& c = live(core_);
  return c.call([&c] {
    std::lock_guard lk(c.m);
    std::vector<child_info> out;
    for (auto& r : c.children) {
      // As find(): an incarnation that has ended is not running, even before
      // its exit reaches the supervisor.
      const bool running = r.running && (r.sub || detail::incarnation_alive(r.current));
      out.push_back({r.spec.name(), running, r.spec.is_supervisor(),
                     running ? r.current : actor(), r.spec.restart_type()});
    }
    return out;
  });
}

std::size_t supervisor::restarts() const {
  auto& c = live(core_);
  std::lock_guard lk(c.m);
  return c.restart_total;
}

void supervisor::stop() {
  auto& c = live(core_);
  {
    std::lock_guard lk(c.m);
    if (c.ended) return;
  }
  auto core = core_;
  c.call([core] { core->finish({exit_reason::kind::shutdown, 0, {}}); });
}

bool supervisor::running() const {
  auto& c = live(core_);
  std::lock_guard lk(c.m);
  return !c.ended;
}

exit_reason supervisor::wait() const {
  auto& c = live(core_);
  std::unique_lock lk(c.m);
  c.cv.wait(lk, [&] { return c.ended; });
  return c.why;
}

std::optional<exit_reason> supervisor::wait(duration t) const {
  auto& c = live(core_);
  std::unique_lock lk(c.m);
  if (!c.cv.wait_for(lk, t, [&] { return c.ended; })) return std::nullopt;
  return c.why;
}

}  // namespace isola
