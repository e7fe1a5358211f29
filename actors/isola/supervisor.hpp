// isola/supervisor.hpp — OTP-style supervision of actor processes.
//
//   isola::supervisor sup({.strategy = isola::strategy::one_for_one,
//                          .intensity = 3, .period = 5s},
//                         {isola::child_spec::actor("parser", make_parser),
//                          isola::child_spec::actor("cache", make_cache)
//                              .restart_type(isola::restart::transient)});
//   isola::actor p = *sup.find("parser");   // the current incarnation
//
// A supervisor is a CAF actor in the root (on its own thread, since stopping
// a child may wait). It starts its children in order, and when one ends it
// applies its strategy:
// - one_for_one: restart that child;
// - one_for_all: stop the others (in reverse start order), restart them all;
// - rest_for_one: stop the children started after it, restart it and them.
// Restart types: permanent children are always restarted, transient ones
// only after an abnormal exit (not normal, not shutdown), temporary ones never
// (and are forgotten). More than `intensity` restarts within `period` and the
// supervisor gives up: it stops every child and ends with reason shutdown; a
// nested supervisor's end is then its parent's child exit (escalation).
//
// - simple_one_for_one: one template spec and no child at first;
//   start_child(args...) starts an instance of it (args appended to the
//   spec's, as OTP appends them), each one restarted alone per the
//   template's restart type.
//
// Stopping a child is an escalation: a stop message (the actor ends after the
// message in hand, reason shutdown), then join for `shutdown`, then SIGTERM,
// join for `shutdown` again, then SIGKILL. shutdown = 0 kills at once;
// shutdown = isola::infinity (OTP's infinity, the default for a nested
// supervisor) asks and waits however long it takes. Children are stopped in
// reverse start order (a simple_one_for_one supervisor's all at once, in no
// order, as OTP); daemon children are terminated when the root ends,
// non-daemon ones are asked to stop and joined without a time limit
// (Python's daemon semantics).
//
// A child whose restart fails is `restarting` (OTP's state): the supervisor
// tries again at once, each try counted against the intensity, until one
// starts, the intensity is exceeded, or terminate_child cancels the loop.
// Pending restarts name a child by identity, never by its place in the list.
//
// Every call on a supervisor that has ended (stopped, or gave up) throws
// supervisor_ended (OTP: noproc); restarts(), running(), wait() and stop()
// still answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

#include "isola/actor.hpp"
#include "isola/detail/callable_traits.hpp"
#include "isola/error.hpp"
#include "isola/exit_reason.hpp"

namespace isola {

enum class strategy : std::uint8_t { one_for_one, one_for_all, rest_for_one, simple_one_for_one };
enum class restart : std::uint8_t { permanent, transient, temporary };

/// OTP's `infinity`: as a shutdown, ask the child to stop and wait for it
/// however long it takes (never SIGTERM or SIGKILL). Any shutdown of 100
/// years or more counts as infinity.
inline constexpr duration infinity{std::numeric_limits<double>::infinity()};

/// What count_children() reports (OTP's count_children).
struct child_counts {
  std::size_t specs = 0;        ///< child specs (1 for simple_one_for_one: the template)
  std::size_t active = 0;       ///< children whose process (or nested supervisor) runs
  std::size_t supervisors = 0;  ///< children that are supervisors, running or not
  std::size_t workers = 0;      ///< children that are actors, running or not
  friend bool operator==(const child_counts&, const child_counts&) = default;
};

/// A call on a supervisor that has ended: stopped, or gave up after too
/// many restarts (OTP: noproc). A value_error, as Python's calls on a closed
/// pool are. (Declared here, with its concept, as future.hpp declares
/// cancelled_error.)
class supervisor_ended : public value_error {
 public:
  using value_error::value_error;
};

/// Thrown by a child's make_behavior (in the child's process) to answer
/// OTP's `ignore`: the child does not start, which is not an error. Its spec
/// is kept, not running (a temporary child's is dropped; a
/// simple_one_for_one instance is not kept). Thrown by a supervisor's init
/// callback: a nested supervisor is kept as a spec, not running.
class ignore_child : public std::exception {
 public:
  const char* what() const noexcept override { return "the child answered ignore to its start"; }
};

struct supervisor_options;
class child_spec;

namespace detail {
struct sup_core;
struct nested_spec;
/// The exit reason's text of a child that threw ignore_child while starting.
inline constexpr const char* ignored_start_text = "isola::ignore_child";
/// Arguments given to a simple_one_for_one start_child, their types erased.
struct extra_args {
  const std::type_info* type = nullptr;
  std::shared_ptr<void> values;  // a std::tuple of that type
};
using extend_fn = std::function<make_process_fn(const extra_args&)>;
[[noreturn]] void throw_template_args(const std::string& name, const std::type_info& want,
                                      const std::type_info& got);

template <std::size_t K, class Params, class Seq>
struct tail_args;
template <std::size_t K, class Params, std::size_t... I>
struct tail_args<K, Params, std::index_sequence<I...>> {
  using type = std::tuple<stored_arg_t<std::tuple_element_t<K + I, Params>>...>;
};

/// For a template spec: make_behavior(spec args..., start_child args...).
template <class Fd, std::size_t K, class Params, class... T>
extend_fn make_extender(std::string name, Fd f, std::tuple<shared_arg<T>...> spec_args) {
  using extras =
      typename tail_args<K, Params, std::make_index_sequence<std::tuple_size_v<Params> - K>>::type;
  return [name = std::move(name), f, spec_args](const extra_args& x) -> make_process_fn {
    if (!x.type || *x.type != typeid(extras)) throw_template_args(name, typeid(extras), *x.type);
    auto& values = *static_cast<extras*>(x.values.get());
    return std::apply(
        [&](auto&... e) {
          return std::apply(
              [&](const auto&... as) {
                return make_actor_process_shared(
                    f, as..., make_shared_arg<std::decay_t<decltype(e)>>(std::move(e))...);
              },
              spec_args);
        },
        values);
  };
}
}  // namespace detail

struct supervisor_options {
  isola::strategy strategy = isola::strategy::one_for_one;
  /// At most `intensity` restarts within `period`; one more and the
  /// supervisor gives up (OTP's MaxR / MaxT). intensity >= 0 and
  /// 0 < period <= 100 years, or the supervisor is a value_error.
  int intensity = 3;
  duration period = std::chrono::seconds(5);
  /// For logs and exit reasons.
  std::string name = "supervisor";
  /// OTP's init: runs in the root each time the supervisor starts (a nested
  /// one: at every restart too), before any child starts, and may change
  /// the children. Throwing refuses the start: the supervisor's constructor
  /// (or the parent's start of it) throws process_error with the reason,
  /// and no child was started. Throwing ignore_child from a nested
  /// supervisor's init keeps it as a spec, not running. It runs on the
  /// supervisor's own thread: calling this supervisor (or its parent) from
  /// it would wait for itself.
  std::function<void(std::vector<child_spec>& children)> init{};
};

/// How to start (and restart) one child.
class child_spec {
 public:
  /// An actor child: make_behavior(args...) in a new process, as isola::spawn.
  /// As the template of a simple_one_for_one supervisor, make_behavior may
  /// take more parameters than args: start_child(more...) gives the rest
  /// (their types as make_behavior takes them, without references; a string
  /// literal is a std::string).
  template <class F, class... A>
  static child_spec actor(std::string name, F make_behavior, A&&... args) {
    using Fd = std::decay_t<F>;
    using traits = detail::callable_traits_t<Fd>;
    child_spec s;
    s.name_ = std::move(name);
    auto shared = std::make_tuple(
        detail::make_shared_arg<detail::stored_arg_t<A>>(std::forward<A>(args))...);
    constexpr bool takes_more = [] {
      if constexpr (traits::known)
        return traits::arity > sizeof...(A);
      else
        return false;
    }();
    if constexpr (takes_more) {
      s.extend_ = detail::make_extender<Fd, sizeof...(A), typename traits::args_tuple>(
          s.name_, make_behavior, shared);
    } else {
      s.make_ = std::apply(
          [&](const auto&... as) { return detail::make_actor_process_shared(make_behavior, as...); },
          shared);
    }
    return s;
  }
  /// A nested supervisor child.
  static child_spec supervisor(std::string name, supervisor_options opts,
                               std::vector<child_spec> children);

  child_spec& restart_type(restart r) {
    restart_ = r;
    return *this;
  }
  /// How long a stop waits at each step of the escalation (0: kill at once;
  /// isola::infinity: wait however long it takes). value_error if negative
  /// or NaN.
  child_spec& shutdown(duration t);
  child_spec& daemon(bool d) {
    daemon_ = d;
    return *this;
  }
  /// forkserver (default) or spawn.
  child_spec& method(start_method m) {
    method_ = m;
    return *this;
  }

  /// What the child's process may do (isola/sandbox.hpp), on every start.
  child_spec& sandbox(isola::sandbox b) {
    sandbox_ = std::move(b);
    return *this;
  }

  const std::string& name() const noexcept { return name_; }
  restart restart_type() const noexcept { return restart_; }
  duration shutdown() const noexcept { return shutdown_; }
  bool daemon() const noexcept { return daemon_; }
  std::optional<start_method> method() const noexcept { return method_; }
  bool is_supervisor() const noexcept { return nested_ != nullptr; }
  /// Whether make_behavior takes more than the spec's arguments: a template
  /// for simple_one_for_one start_child(args...) only.
  bool takes_start_args() const noexcept { return extend_ != nullptr; }

 private:
  friend struct detail::sup_core;

  std::string name_;
  restart restart_ = restart::permanent;
  duration shutdown_ = std::chrono::seconds(5);
  bool daemon_ = true;
  std::optional<start_method> method_;
  std::optional<isola::sandbox> sandbox_;
  detail::make_process_fn make_;
  detail::extend_fn extend_;
  std::shared_ptr<detail::nested_spec> nested_;
};

/// One child as which_children() reports it (a simple_one_for_one instance
/// has its template's name).
struct child_info {
  std::string name;
  bool running = false;
  /// Between a failed restart and the next try (OTP's `restarting`).
  bool restarting = false;
  bool is_supervisor = false;
  isola::actor actor;  // the current incarnation (empty for a supervisor or a stopped child)
  restart restart_type = restart::permanent;
};

class supervisor {
 public:
  /// Starts the children in order. If one fails to start, the ones started
  /// are stopped and the error is rethrown. value_error for invalid options
  /// or specs (a simple_one_for_one supervisor takes exactly one actor
  /// spec, its template); process_error if options.init refuses.
  explicit supervisor(supervisor_options opts, std::vector<child_spec> children = {});
  /// Stops the supervisor and its children (if this handle owns it).
  ~supervisor();
  supervisor(supervisor&&) noexcept;
  supervisor& operator=(supervisor&&) noexcept;
  supervisor(const supervisor&) = delete;
  supervisor& operator=(const supervisor&) = delete;

  /// Adds and starts a child. value_error if the name is taken; the start
  /// function's error if it cannot start (the tree is unharmed). An empty
  /// actor if the child answered ignore_child (its spec is kept, not
  /// running; a temporary one's is dropped).
  isola::actor start_child(child_spec spec);
  /// simple_one_for_one: starts an instance of the template with args
  /// appended to its own. type_error if they are not what make_behavior
  /// takes; an empty actor if the instance answered ignore_child (nothing is
  /// kept). A temporary instance's args are not kept once it runs.
  template <class... A>
  requires(!(std::is_same_v<std::remove_cvref_t<A>, child_spec> || ...))
  isola::actor start_child(A&&... args) {
    using values = std::tuple<detail::stored_arg_t<A>...>;
    return start_instance(
        {&typeid(values), std::make_shared<values>(std::forward<A>(args)...)});
  }
  /// Stops a child (escalation as above); its spec stays for restart_child.
  /// A restarting child's restart loop is cancelled (OTP-9549). A temporary
  /// child is forgotten. Terminating a stopped child does nothing.
  void terminate_child(const std::string& name);
  /// simple_one_for_one: stops that instance and forgets it (a restarting
  /// instance is named by its last incarnation). Nothing if it has ended
  /// and is not restarting; value_error if it is not this supervisor's.
  void terminate_child(const isola::actor& child);
  /// Starts a terminated child again. value_error while it runs or is
  /// restarting. An empty actor if it answered ignore_child.
  isola::actor restart_child(const std::string& name);
  /// Forgets a terminated child. value_error while it runs or is restarting.
  void delete_child(const std::string& name);
  /// The spec of the child called name (a simple_one_for_one supervisor's:
  /// its template). value_error if there is none.
  child_spec get_childspec(const std::string& name) const;
  child_counts count_children() const;

  /// The running actor of the child called name. nullopt if there is none,
  /// including between a crash and its restart: an incarnation that has
  /// ended is never returned, even before the supervisor has heard of its
  /// exit (OTP's which_children shows `restarting` then). After the restart,
  /// the new incarnation. nullopt for a simple_one_for_one supervisor (its
  /// instances have no names of their own: which_children lists them).
  std::optional<isola::actor> find(const std::string& name) const;
  /// A nested supervisor child (a handle that does not own it).
  supervisor child_supervisor(const std::string& name) const;
  std::vector<child_info> which_children() const;
  /// Restarts made so far (all children).
  std::size_t restarts() const;

  /// Stops every child (reverse start order) and ends the supervisor with
  /// reason shutdown. Idempotent.
  void stop();
  bool running() const;
  /// Waits for the supervisor to end; its exit reason.
  exit_reason wait() const;
  /// As wait(), at most t: nullopt while it still runs.
  std::optional<exit_reason> wait(duration t) const;

 private:
  explicit supervisor(std::shared_ptr<detail::sup_core> core, bool owns);
  isola::actor start_instance(detail::extra_args args);
  std::shared_ptr<detail::sup_core> core_;
  bool owns_ = true;
};

}  // namespace isola
