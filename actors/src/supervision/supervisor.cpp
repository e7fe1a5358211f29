// Supervisors: each one a detached CAF actor in the root. All decisions
// (starting, stopping, restarting children) run on that actor, in the order
// its messages arrive; child exits reach it from the multiplexer thread and
// API calls from user threads, both as `run` messages that drain a queue of
// operations held beside it. Only that actor changes the children; it takes
// the mutex to do so, and other threads read only under it.
#include "isola/supervisor.hpp"

#include <caf/all.hpp>

#include <boost/core/demangle.hpp>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>

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

// Durations at or past this are forever: converting them to the clock's
// nanoseconds would overflow (~292 years), and nobody waits a century.
constexpr duration forever_after = std::chrono::hours(24 * 365 * 100);

/// now + d, saturated: nullopt (wait forever) for infinity and anything huge.
std::optional<clock::time_point> deadline_after(duration d) {
  if (!(d < forever_after)) return std::nullopt;
  if (d <= duration::zero()) return clock::now();
  return clock::now() + std::chrono::duration_cast<clock::duration>(d);
}

void validate(const supervisor_options& o) {
  if (o.intensity < 0)
    throw value_error("supervisor " + o.name + ": intensity must be >= 0, not " +
                      std::to_string(o.intensity));
  if (!(o.period > duration::zero()) || !(o.period <= forever_after))
    throw value_error("supervisor " + o.name + ": period must be > 0 s and at most 100 years, not " +
                      std::to_string(o.period.count()) + " s");
  if (static_cast<std::uint8_t>(o.strategy) > static_cast<std::uint8_t>(strategy::simple_one_for_one))
    throw value_error("supervisor " + o.name + ": unknown strategy");
}

void validate_children(const supervisor_options& o, const std::vector<child_spec>& children) {
  if (o.strategy != strategy::simple_one_for_one) {
    for (auto& c : children)
      if (c.takes_start_args())
        throw value_error("supervisor " + o.name + ": child " + c.name() +
                          " takes start arguments: it can only be the template of a "
                          "simple_one_for_one supervisor");
    return;
  }
  if (children.size() != 1)
    throw value_error("supervisor " + o.name +
                      ": a simple_one_for_one supervisor takes exactly one child spec (its "
                      "template), not " +
                      std::to_string(children.size()));
  if (children.front().is_supervisor())
    throw value_error("supervisor " + o.name +
                      ": a simple_one_for_one template must be an actor spec");
}

[[noreturn]] void throw_template_args(const std::string& name, const std::type_info& want,
                                      const std::type_info& got) {
  throw type_error("start_child: the template '" + name + "' takes the arguments " +
                   boost::core::demangle(want.name()) + ", not " +
                   boost::core::demangle(got.name()));
}

struct nested_spec {
  supervisor_options opts;
  std::vector<child_spec> children;
};

enum class child_state : std::uint8_t { stopped, running, restarting };

struct sup_core : std::enable_shared_from_this<sup_core> {
  /// A child of the spec list (every strategy but simple_one_for_one).
  struct child_rec {
    child_spec spec;
    std::uint64_t key = 0;  // its identity: what pending restarts refer to
    child_state st = child_state::stopped;
    actor current;                  // actor children
    std::shared_ptr<sup_core> sub;  // supervisor children
  };
  /// An instance of a simple_one_for_one template: small, as there may be
  /// thousands; the spec is the template's.
  struct instance {
    child_state st = child_state::stopped;
    actor current;         // while restarting: the incarnation that ended
    make_process_fn make;  // kept for restarts; empty for temporary instances
  };

  supervisor_options opts;
  std::weak_ptr<sup_core> parent;
  caf::actor self;

  mutable std::mutex m;  // guards everything below (mutated on the actor's thread only)
  std::condition_variable cv;
  std::vector<child_rec> children;  // simple_one_for_one: the template alone, never started
  std::unordered_map<std::uint64_t, instance> instances;  // simple_one_for_one, by key
  std::unordered_map<std::uint64_t, std::uint64_t> by_actor;  // incarnation id -> key
  std::uint64_t next_key = 1;
  std::deque<std::function<void()>> ops;
  std::deque<clock::time_point> recent;
  std::unordered_set<std::uint64_t> expected;  // exits we caused: not restarted
  std::size_t restart_total = 0;
  bool ended = false;
  bool shutting_down = false;  // stopping everything: never restart
  exit_reason why;

  bool simple() const noexcept { return opts.strategy == strategy::simple_one_for_one; }

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

  /// On the actor: throws supervisor_ended once it has ended (OTP: noproc).
  void check_running() const {
    if (ended)
      throw supervisor_ended("supervisor " + opts.name + " has ended (" + why.to_string() +
                             "); it has no children to act on");
  }

  child_rec* find_name(const std::string& name) {
    for (auto& c : children)
      if (c.spec.name() == name) return &c;
    return nullptr;
  }
  std::size_t index_of(std::uint64_t key) const {
    for (std::size_t i = 0; i < children.size(); ++i)
      if (children[i].key == key) return i;
    return children.size();
  }
  const child_spec& tmpl() const { return children.front().spec; }

  [[noreturn]] void no_child(const std::string& name) const {
    throw value_error("supervisor " + opts.name + " has no child named '" + name + "'");
  }
  void refuse_simple(const char* what) const {
    if (simple())
      throw value_error(std::string(what) + ": supervisor " + opts.name +
                        " is simple_one_for_one (its children are instances of one template: "
                        "start_child(args...), terminate_child(actor))");
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

  /// On the actor: starts one incarnation of an actor child. nullopt if it
  /// answered ignore_child; throws if it could not start.
  std::optional<actor> start_actor(const child_spec& spec, const make_process_fn& make) {
    spawn_options so;
    so.name = spec.name();
    so.method = spec.method_;
    so.daemon = spec.daemon_;
    so.sandbox = spec.sandbox_;
    std::weak_ptr<sup_core> w = weak_from_this();
    actor a = node_spawn(so, make, [w](const actor& who, const exit_reason& r) {
      if (auto s = w.lock()) s->post([s, id = who.id(), r] { s->child_exited(id, r); });
    });
    // As OTP's start_link: the child counts as started once its behavior is
    // built; if building it fails, starting it fails.
    if (auto failed = node_wait_started(a.id(), clock::now() + std::chrono::seconds(30))) {
      {
        std::lock_guard lk(m);
        expected.insert(a.id());
      }
      node_kill(a.id(), *failed);
      if (failed->what == exit_reason::kind::normal && failed->text == ignored_start_text) {
        get_logger().info("supervisor " + opts.name + ": child " + spec.name() +
                          " answered ignore to its start");
        return std::nullopt;
      }
      throw process_error("supervisor " + opts.name + ": child " + spec.name() +
                          " failed to start: " + failed->to_string());
    }
    return a;
  }

  /// On the actor: starts one child of the list (throws if it cannot
  /// start). False if it answered ignore (it stays stopped).
  bool start(child_rec& c) {
    if (c.spec.nested_) {
      auto sub = create(c.spec.nested_->opts, weak_from_this());
      auto specs = c.spec.nested_->children;
      try {
        sub->call([&] { sub->start_all(std::move(specs)); });
      } catch (const ignore_child&) {
        sub->call([&] { sub->finish({exit_reason::kind::normal, 0, "ignore"}, false, false); });
        return false;
      } catch (...) {
        sub->call([&] {
          sub->finish({exit_reason::kind::shutdown, 0, "failed to start"}, false, false);
        });
        throw;
      }
      std::lock_guard lk(m);
      c.sub = std::move(sub);
      c.st = child_state::running;
      return true;
    }
    if (!c.spec.make_)
      throw value_error("supervisor " + opts.name + ": child " + c.spec.name() +
                        " takes start arguments: it can only be the template of a "
                        "simple_one_for_one supervisor");
    auto a = start_actor(c.spec, c.spec.make_);
    std::lock_guard lk(m);
    if (!a) {
      c.st = child_state::stopped;
      return false;
    }
    if (c.current) by_actor.erase(c.current.id());
    c.current = *a;
    c.st = child_state::running;
    by_actor[a->id()] = c.key;
    return true;
  }

  /// On the actor: runs init, then starts the children in order.
  void start_all(std::vector<child_spec> specs) {
    if (opts.init) {
      try {
        opts.init(specs);
      } catch (const ignore_child&) {
        throw;
      } catch (const std::exception& ex) {
        throw process_error("supervisor " + opts.name + ": init refused to start: " + ex.what());
      }
    }
    validate_children(opts, specs);
    if (simple()) {
      std::lock_guard lk(m);
      children.push_back({std::move(specs.front()), next_key++, child_state::stopped, {}, {}});
      return;
    }
    for (auto& s : specs) {
      {
        std::lock_guard lk(m);
        if (find_name(s.name()))
          throw value_error("supervisor " + opts.name + ": two children named '" + s.name() + "'");
        children.push_back({std::move(s), next_key++, child_state::stopped, {}, {}});
      }
      try {
        if (!start(children.back()) && children.back().spec.restart_type() == restart::temporary) {
          std::lock_guard lk(m);
          children.pop_back();  // OTP: an ignored temporary child's spec is not kept
        }
      } catch (...) {
        stop_all();
        std::lock_guard lk(m);
        children.clear();
        by_actor.clear();
        throw;
      }
    }
  }

  // ------------------------------------------------------------ stopping
  /// On the actor: stops one incarnation with the escalation of spec.
  void stop_incarnation(const child_spec& spec, const actor& a, bool root_ending) {
    std::uint64_t id = a.id();
    {
      std::lock_guard lk(m);
      expected.insert(id);
      by_actor.erase(id);
    }
    exit_reason why_stop{exit_reason::kind::shutdown, 0, {}};
    if (root_ending && !spec.daemon_) {
      // Python's non-daemon semantics: ask, then join however long it takes.
      stop_actor(id);
      node_join(id, std::nullopt);
    } else if (spec.shutdown_ <= duration::zero()) {
      node_kill(id, why_stop);
      node_join(id, std::nullopt);
    } else {
      stop_actor(id);
      // Each deadline is taken when its step starts and saturates: infinity
      // (or any shutdown past a century) waits for ever, as OTP's does.
      if (!node_join(id, deadline_after(spec.shutdown_))) {
        node_terminate(id, why_stop);
        if (!node_join(id, deadline_after(spec.shutdown_))) {
          node_kill(id, why_stop);
          node_join(id, std::nullopt);
        }
      }
    }
  }

  /// On the actor: stops one child of the list. A restarting child's loop
  /// is cancelled.
  void stop_child(child_rec& c, bool root_ending) {
    if (c.st == child_state::restarting) {
      std::lock_guard lk(m);
      c.st = child_state::stopped;
      return;
    }
    if (c.st != child_state::running) return;
    if (c.sub) {
      auto sub = c.sub;
      sub->call([&] { sub->finish({exit_reason::kind::shutdown, 0, {}}, root_ending); });
      std::lock_guard lk(m);
      c.st = child_state::stopped;
      c.sub.reset();
      return;
    }
    stop_incarnation(c.spec, c.current, root_ending);
    std::lock_guard lk(m);
    c.st = child_state::stopped;
    c.current = actor();
  }

  /// On the actor: stops every running instance at once (OTP stops a
  /// simple_one_for_one supervisor's children in no order): one escalation
  /// for all of them, so that N children take one shutdown, not N.
  void stop_instances(bool root_ending) {
    const child_spec& spec = tmpl();
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lk(m);
      for (auto& [key, in] : instances) {
        if (in.st == child_state::running) {
          ids.push_back(in.current.id());
          expected.insert(in.current.id());
        }
        in.st = child_state::stopped;
      }
      by_actor.clear();
    }
    exit_reason why_stop{exit_reason::kind::shutdown, 0, {}};
    auto each = [&](auto f) {
      for (auto id : ids) {
        try {
          f(id);
        } catch (const std::exception& ex) {
          get_logger().error("supervisor " + opts.name + ": stopping a child: " + ex.what());
        }
      }
    };
    auto left = [&](std::optional<clock::time_point> until) {
      std::vector<std::uint64_t> rest;
      for (auto id : ids)
        if (!node_join(id, until)) rest.push_back(id);
      ids.swap(rest);
    };
    if (root_ending && !spec.daemon_) {
      each([](std::uint64_t id) { stop_actor(id); });
      left(std::nullopt);
    } else if (spec.shutdown_ <= duration::zero()) {
      each([&](std::uint64_t id) { node_kill(id, why_stop); });
      left(std::nullopt);
    } else {
      each([](std::uint64_t id) { stop_actor(id); });
      left(deadline_after(spec.shutdown_));
      each([&](std::uint64_t id) { node_terminate(id, why_stop); });
      left(deadline_after(spec.shutdown_));
      each([&](std::uint64_t id) { node_kill(id, why_stop); });
      left(std::nullopt);
    }
    std::lock_guard lk(m);
    instances.clear();
  }

  void stop_all(bool root_ending = false) {
    if (simple()) {
      stop_instances(root_ending);
      return;
    }
    for (auto it = children.rbegin(); it != children.rend(); ++it) {
      try {
        stop_child(*it, root_ending);
      } catch (const std::exception& ex) {
        get_logger().error("supervisor " + opts.name + ": stopping " + it->spec.name() + ": " +
                           ex.what());
      }
    }
  }

  /// On the actor: stops everything and ends with reason r (tells the
  /// parent unless told not to: it is the one asking).
  void finish(exit_reason r, bool root_ending = false, bool tell_parent = true) {
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
    if (!tell_parent) return;
    if (auto p = parent.lock()) {
      auto me = shared_from_this();
      p->post([p, me, r] { p->sub_exited(me, r); });
    }
  }

  // ------------------------------------------------------------ restarting
  /// On the actor: an actor child ended.
  void child_exited(std::uint64_t id, const exit_reason& r) {
    std::uint64_t key = 0;
    {
      std::lock_guard lk(m);
      if (expected.erase(id) || ended || shutting_down) return;
      auto it = by_actor.find(id);
      if (it == by_actor.end()) return;  // not (any longer) ours
      key = it->second;
    }
    if (simple()) {
      instance_exited(key, id, r);
      return;
    }
    std::size_t index = index_of(key);
    if (index == children.size() || children[index].st != child_state::running ||
        children[index].sub || children[index].current.id() != id)
      return;
    {
      std::lock_guard lk(m);
      by_actor.erase(id);
      children[index].st = child_state::stopped;
      children[index].current = actor();
    }
    get_logger().info("supervisor " + opts.name + ": child " + children[index].spec.name() +
                      " exited: " + r.to_string());
    after_exit(key, r);
  }

  /// On the actor: a supervisor child ended on its own (gave up).
  void sub_exited(const std::shared_ptr<sup_core>& sub, const exit_reason& r) {
    std::size_t index = children.size();
    {
      std::lock_guard lk(m);
      if (ended || shutting_down) return;
      for (std::size_t i = 0; i < children.size(); ++i)
        if (children[i].sub == sub) index = i;
      if (index == children.size() || children[index].st != child_state::running) return;
      children[index].st = child_state::stopped;
      children[index].sub.reset();
    }
    get_logger().info("supervisor " + opts.name + ": child supervisor " +
                      children[index].spec.name() + " exited: " + r.to_string());
    after_exit(children[index].key, r);
  }

  /// Whether a child of this restart type is restarted after exit r.
  static bool restarts_after(restart type, const exit_reason& r) {
    return type == restart::permanent || (type == restart::transient && r.abnormal());
  }

  void give_up(const std::string& name, const std::string& what) {
    get_logger().error("supervisor " + opts.name + ": reached its maximum restart intensity (" +
                       std::to_string(opts.intensity) + " restarts in " +
                       std::to_string(opts.period.count()) + " s); shutting down");
    finish({exit_reason::kind::shutdown, 0,
            "reached max restart intensity after " + name + " " + what});
  }

  void after_exit(std::uint64_t key, const exit_reason& r) {
    std::size_t index = index_of(key);
    if (index == children.size()) return;
    // A nested supervisor that gave up ends with reason shutdown; OTP restarts
    // a permanent one (and counts it), which is how a failure escalates.
    if (!restarts_after(children[index].spec.restart_type(), r)) {
      if (children[index].spec.restart_type() == restart::temporary) {
        std::lock_guard lk(m);
        children.erase(children.begin() + static_cast<std::ptrdiff_t>(index));
      }
      return;
    }
    if (!note_restart()) {
      give_up(children[index].spec.name(), "exited: " + r.to_string());
      return;
    }
    restart_group(key);
  }

  /// On the actor: restarts the child `key` (not running) per the strategy.
  /// A child that cannot start becomes `restarting` and is tried again
  /// through the queue, by key.
  void restart_group(std::uint64_t key) {
    std::size_t index = index_of(key);
    if (index == children.size()) return;
    std::size_t first = index;
    if (opts.strategy != strategy::one_for_one) {
      std::size_t from = opts.strategy == strategy::one_for_all ? 0 : index + 1;
      for (std::size_t i = children.size(); i-- > from;)
        if (i != index) stop_child(children[i], false);
      if (opts.strategy == strategy::one_for_all) first = 0;
      // temporary children stopped by the strategy are not restarted (OTP)
      std::lock_guard lk(m);
      for (std::size_t i = children.size(); i-- > first;)
        if (children[i].key != key && children[i].spec.restart_type() == restart::temporary &&
            children[i].st != child_state::running)
          children.erase(children.begin() + static_cast<std::ptrdiff_t>(i));
      index = index_of(key);
      if (opts.strategy == strategy::rest_for_one) first = index;
    }
    std::size_t last = opts.strategy == strategy::one_for_one ? index + 1 : children.size();
    for (std::size_t i = first; i < last && i < children.size(); ++i) {
      auto& c = children[i];
      if (c.st == child_state::running) continue;
      try {
        if (start(c)) {
          std::lock_guard lk(m);
          ++restart_total;
        }
      } catch (const std::exception& ex) {
        get_logger().error("supervisor " + opts.name + ": restarting " + c.spec.name() +
                           " failed: " + ex.what());
        {
          std::lock_guard lk(m);
          c.st = child_state::restarting;
        }
        // Tried again through the queue (so calls waiting behind it run):
        // by key, so a child deleted or moved meanwhile is never mistaken
        // for another, and a terminate_child meanwhile cancels it.
        auto me = shared_from_this();
        post([me, k = c.key, what = std::string(ex.what())] { me->retry(k, what); });
        return;
      }
    }
  }

  /// On the actor: tries again to restart a child still `restarting`.
  void retry(std::uint64_t key, const std::string& what) {
    if (ended || shutting_down) return;
    std::size_t index = index_of(key);
    if (index == children.size() || children[index].st != child_state::restarting) return;
    // A failed restart counts as another restart towards the intensity (OTP).
    if (!note_restart()) {
      give_up(children[index].spec.name(), "failed to restart: " + what);
      return;
    }
    restart_group(key);
  }

  // ------------------------------------------------ simple_one_for_one
  /// The start function of a new instance: the template's, with args.
  make_process_fn instance_make(const extra_args& args) const {
    const child_spec& t = tmpl();
    if (t.extend_) return t.extend_(args);
    if (*args.type != typeid(std::tuple<>))
      throw_template_args(t.name(), typeid(std::tuple<>), *args.type);
    return t.make_;
  }

  /// On the actor: starts (or restarts) the instance key. True if it runs;
  /// false if it answered ignore (it is then forgotten).
  bool start_instance(std::uint64_t key) {
    auto& in = instances.at(key);
    auto a = start_actor(tmpl(), in.make);
    std::lock_guard lk(m);
    if (in.current) by_actor.erase(in.current.id());
    if (!a) {
      instances.erase(key);
      return false;
    }
    in.current = *a;
    in.st = child_state::running;
    by_actor[a->id()] = key;
    return true;
  }

  void instance_exited(std::uint64_t key, std::uint64_t id, const exit_reason& r) {
    auto it = instances.find(key);
    if (it == instances.end() || it->second.st != child_state::running ||
        it->second.current.id() != id)
      return;
    if (!restarts_after(tmpl().restart_type(), r)) {
      std::lock_guard lk(m);
      by_actor.erase(id);
      instances.erase(it);
      return;
    }
    {
      // The ended incarnation stays the instance's name (terminate_child
      // takes it) until the restart replaces it.
      std::lock_guard lk(m);
      it->second.st = child_state::stopped;
    }
    if (!note_restart()) {
      give_up(tmpl().name(), "exited: " + r.to_string());
      return;
    }
    restart_instance(key);
  }

  void restart_instance(std::uint64_t key) {
    try {
      if (start_instance(key)) {
        std::lock_guard lk(m);
        ++restart_total;
      }
    } catch (const std::exception& ex) {
      get_logger().error("supervisor " + opts.name + ": restarting an instance of " +
                         tmpl().name() + " failed: " + ex.what());
      {
        std::lock_guard lk(m);
        instances.at(key).st = child_state::restarting;
      }
      auto me = shared_from_this();
      post([me, key, what = std::string(ex.what())] { me->retry_instance(key, what); });
    }
  }

  void retry_instance(std::uint64_t key, const std::string& what) {
    if (ended || shutting_down) return;
    auto it = instances.find(key);
    if (it == instances.end() || it->second.st != child_state::restarting) return;
    if (!note_restart()) {
      give_up(tmpl().name(), "failed to restart: " + what);
      return;
    }
    restart_instance(key);
  }

  /// Records a restart; false if that exceeds the intensity.
  bool note_restart() {
    auto now = clock::now();
    auto window = std::chrono::duration_cast<clock::duration>(opts.period);  // validated: fits
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

child_spec& child_spec::shutdown(duration t) {
  if (std::isnan(t.count()) || t < duration::zero())
    throw value_error("child_spec " + name_ + ": shutdown must be >= 0 (0: kill at once; "
                      "isola::infinity: wait however long it takes), not " +
                      std::to_string(t.count()) + " s");
  shutdown_ = t;
  return *this;
}

child_spec child_spec::supervisor(std::string name, supervisor_options opts,
                                  std::vector<child_spec> children) {
  detail::validate(opts);
  if (!opts.init) detail::validate_children(opts, children);
  child_spec s;
  s.name_ = std::move(name);
  s.nested_ = std::make_shared<detail::nested_spec>(
      detail::nested_spec{std::move(opts), std::move(children)});
  s.shutdown_ = infinity;
  return s;
}

supervisor::supervisor(supervisor_options opts, std::vector<child_spec> children) {
  if (detail::in_actor_process())
    throw value_error("isola::supervisor: supervisors run in the root process");
  detail::validate(opts);
  if (!opts.init) detail::validate_children(opts, children);
  core_ = detail::sup_core::create(std::move(opts), {});
  auto c = core_;
  try {
    c->call([c, &children] { c->start_all(std::move(children)); });
  } catch (const ignore_child&) {
    c->call([c] { c->finish({exit_reason::kind::normal, 0, "ignore"}); });
    throw process_error("supervisor " + c->opts.name +
                        ": init answered ignore; the supervisor did not start");
  } catch (...) {
    // Ended, so that a handle nobody holds leaves nothing behind.
    c->call([c] { c->finish({exit_reason::kind::shutdown, 0, "failed to start"}); });
    throw;
  }
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
}  // namespace

actor supervisor::start_child(child_spec spec) {
  auto& c = live(core_);
  return c.call([&c, &spec]() -> actor {
    c.check_running();
    c.refuse_simple("start_child(child_spec)");
    if (auto* r = c.find_name(spec.name()))
      throw value_error("supervisor " + c.opts.name + " already has a child named '" +
                        spec.name() + "' (" +
                        (r->st == detail::child_state::stopped ? "present, not running: "
                                                                 "restart_child starts it"
                                                               : "running") +
                        ")");
    {
      std::lock_guard lk(c.m);
      c.children.push_back({std::move(spec), c.next_key++, detail::child_state::stopped, {}, {}});
    }
    try {
      if (!c.start(c.children.back())) {
        if (c.children.back().spec.restart_type() == restart::temporary) {
          std::lock_guard lk(c.m);
          c.children.pop_back();  // OTP: an ignored temporary child's spec is not kept
        }
        return actor();
      }
    } catch (...) {
      std::lock_guard lk(c.m);
      c.children.pop_back();
      throw;
    }
    return c.children.back().current;
  });
}

actor supervisor::start_instance(detail::extra_args args) {
  auto& c = live(core_);
  return c.call([&c, &args]() -> actor {
    c.check_running();
    if (!c.simple())
      throw value_error("start_child(args...): supervisor " + c.opts.name +
                        " is not simple_one_for_one; start_child takes a child_spec");
    const child_spec& t = c.tmpl();
    detail::sup_core::instance in;
    in.make = c.instance_make(args);
    std::uint64_t key = 0;
    {
      std::lock_guard lk(c.m);
      key = c.next_key++;
      c.instances.emplace(key, std::move(in));
    }
    try {
      if (!c.start_instance(key)) return actor();
    } catch (...) {
      std::lock_guard lk(c.m);
      c.instances.erase(key);
      throw;
    }
    std::lock_guard lk(c.m);
    auto& started = c.instances.at(key);
    // OTP: a temporary child is never restarted, so its start arguments are
    // not kept (they may be large).
    if (t.restart_type() == restart::temporary) started.make = nullptr;
    return started.current;
  });
}

void supervisor::terminate_child(const std::string& name) {
  auto& c = live(core_);
  c.call([&c, &name] {
    c.check_running();
    c.refuse_simple("terminate_child(name)");
    auto* r = c.find_name(name);
    if (!r) c.no_child(name);
    c.stop_child(*r, false);
    if (r->spec.restart_type() == restart::temporary) {
      std::lock_guard lk(c.m);
      std::erase_if(c.children, [&](auto& x) { return &x == r; });
    }
  });
}

void supervisor::terminate_child(const actor& child) {
  auto& c = live(core_);
  c.call([&c, &child] {
    c.check_running();
    if (!c.simple())
      throw value_error("terminate_child(actor): supervisor " + c.opts.name +
                        " is not simple_one_for_one; name the child");
    auto k = c.by_actor.find(child.id());
    if (k == c.by_actor.end()) {
      // OTP: an ended process is fine (it may have been this one's), a live
      // one is not ours.
      if (detail::incarnation_alive(child))
        throw value_error("supervisor " + c.opts.name + " has no child " + child.name() +
                          " (pid " + std::to_string(child.pid()) + ")");
      return;
    }
    auto key = k->second;
    auto& in = c.instances.at(key);
    if (in.st == detail::child_state::running) c.stop_incarnation(c.tmpl(), in.current, false);
    std::lock_guard lk(c.m);
    c.by_actor.erase(child.id());
    c.instances.erase(key);  // a restarting one's loop ends with it
  });
}

actor supervisor::restart_child(const std::string& name) {
  auto& c = live(core_);
  return c.call([&c, &name]() -> actor {
    c.check_running();
    c.refuse_simple("restart_child");
    auto* r = c.find_name(name);
    if (!r) c.no_child(name);
    if (r->st == detail::child_state::running)
      throw value_error("child '" + name + "' is running");
    if (r->st == detail::child_state::restarting)
      throw value_error("child '" + name + "' is restarting");
    if (!c.start(*r)) return actor();
    return r->current;
  });
}

void supervisor::delete_child(const std::string& name) {
  auto& c = live(core_);
  c.call([&c, &name] {
    c.check_running();
    c.refuse_simple("delete_child");
    auto* r = c.find_name(name);
    if (!r) c.no_child(name);
    if (r->st == detail::child_state::running)
      throw value_error("child '" + name + "' is running; terminate_child first");
    if (r->st == detail::child_state::restarting)
      throw value_error("child '" + name + "' is restarting; terminate_child first");
    std::lock_guard lk(c.m);
    std::erase_if(c.children, [&](auto& x) { return &x == r; });
  });
}

child_spec supervisor::get_childspec(const std::string& name) const {
  auto& c = live(core_);
  return c.call([&c, &name] {
    c.check_running();
    auto* r = c.find_name(name);
    if (!r) c.no_child(name);
    return r->spec;
  });
}

child_counts supervisor::count_children() const {
  auto& c = live(core_);
  return c.call([&c] {
    c.check_running();
    child_counts n;
    if (c.simple()) {
      n.specs = 1;
      for (auto& [key, in] : c.instances)
        if (in.st == detail::child_state::running && detail::incarnation_alive(in.current))
          ++n.active;
      n.workers = c.instances.size();
      return n;
    }
    n.specs = c.children.size();
    for (auto& r : c.children) {
      if (r.spec.is_supervisor())
        ++n.supervisors;
      else
        ++n.workers;
      if (r.st == detail::child_state::running && (r.sub || detail::incarnation_alive(r.current)))
        ++n.active;
    }
    return n;
  });
}

std::optional<actor> supervisor::find(const std::string& name) const {
  auto& c = live(core_);
  // Through the supervisor's queue, so that exits it was told of are applied.
  // An incarnation that has ended but whose exit has not reached the
  // supervisor yet (it is on its way, then the restart) is not returned:
  // OTP's which_children says `restarting` (no pid) until the new one runs.
  return c.call([&c, &name]() -> std::optional<actor> {
    c.check_running();
    if (c.simple()) return std::nullopt;  // instances have no names of their own
    auto* r = c.find_name(name);
    if (!r || r->st != detail::child_state::running || r->sub ||
        !detail::incarnation_alive(r->current))
      return std::nullopt;
    return r->current;
  });
}

supervisor supervisor::child_supervisor(const std::string& name) const {
  auto& c = live(core_);
  auto sub = c.call([&c, &name] {
    c.check_running();
    auto* r = c.find_name(name);
    if (!r || !r->sub)
      throw value_error("supervisor " + c.opts.name + " has no running child supervisor '" +
                        name + "'");
    return r->sub;
  });
  return supervisor(std::move(sub), false);
}

std::vector<child_info> supervisor::which_children() const {
  auto& c = live(core_);
  return c.call([&c] {
    c.check_running();
    std::vector<child_info> out;
    // As find(): an incarnation that has ended is not running, even before
    // its exit reaches the supervisor.
    if (c.simple()) {
      out.reserve(c.instances.size());
      for (auto& [key, in] : c.instances) {
        const bool running =
            in.st == detail::child_state::running && detail::incarnation_alive(in.current);
        out.push_back({c.tmpl().name(), running, in.st == detail::child_state::restarting, false,
                       running ? in.current : actor(), c.tmpl().restart_type()});
      }
      return out;
    }
    for (auto& r : c.children) {
      const bool running = r.st == detail::child_state::running &&
                           (r.sub || detail::incarnation_alive(r.current));
      out.push_back({r.spec.name(), running, r.st == detail::child_state::restarting,
                     r.spec.is_supervisor(), running ? r.current : actor(),
                     r.spec.restart_type()});
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
  // Saturated: wait_for with a huge duration overflows the clock.
  auto until = detail::deadline_after(t);
  if (!until) {
    c.cv.wait(lk, [&] { return c.ended; });
    return c.why;
  }
  if (!c.cv.wait_until(lk, *until, [&] { return c.ended; })) return std::nullopt;
  return c.why;
}

}  // namespace isola
