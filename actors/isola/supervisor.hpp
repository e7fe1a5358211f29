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
// Stopping a child is an escalation: a stop message (the actor ends after the
// message in hand, reason shutdown), then join for `shutdown`, then SIGTERM,
// join for `shutdown` again, then SIGKILL. shutdown = 0 kills at once.
// Children are stopped in reverse start order; daemon children are
// terminated when the root ends, non-daemon ones are asked to stop and
// joined without a time limit (Python's daemon semantics).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "isola/actor.hpp"
#include "isola/exit_reason.hpp"

namespace isola {

enum class strategy : std::uint8_t { one_for_one, one_for_all, rest_for_one };
enum class restart : std::uint8_t { permanent, transient, temporary };

struct supervisor_options;
class child_spec;

namespace detail {
struct sup_core;
struct nested_spec;
}  // namespace detail

struct supervisor_options {
  isola::strategy strategy = isola::strategy::one_for_one;
  /// At most `intensity` restarts within `period`; one more and the
  /// supervisor gives up (OTP's MaxR / MaxT).
  int intensity = 3;
  duration period = std::chrono::seconds(5);
  /// For logs and exit reasons.
  std::string name = "supervisor";
};

/// How to start (and restart) one child.
class child_spec {
 public:
  /// An actor child: make_behavior(args...) in a new process, as isola::spawn.
  template <class F, class... A>
  static child_spec actor(std::string name, F make_behavior, A&&... args) {
    child_spec s;
    s.name_ = std::move(name);
    s.make_ = detail::make_actor_process(make_behavior, std::forward<A>(args)...);
    return s;
  }
  /// A nested supervisor child.
  static child_spec supervisor(std::string name, supervisor_options opts,
                               std::vector<child_spec> children);

  child_spec& restart_type(restart r) {
    restart_ = r;
    return *this;
  }
  /// How long a stop waits at each step of the escalation (0: kill at once).
  child_spec& shutdown(duration t) {
    shutdown_ = t;
    return *this;
  }
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
  bool is_supervisor() const noexcept { return nested_ != nullptr; }

 private:
  friend struct detail::sup_core;

  std::string name_;
  restart restart_ = restart::permanent;
  duration shutdown_ = std::chrono::seconds(5);
  bool daemon_ = true;
  std::optional<start_method> method_;
  std::optional<isola::sandbox> sandbox_;
  detail::make_process_fn make_;
  std::shared_ptr<detail::nested_spec> nested_;
};

/// One child as which_children() reports it.
struct child_info {
  std::string name;
  bool running = false;
  bool is_supervisor = false;
  isola::actor actor;  // the current incarnation (empty for a supervisor or a stopped child)
  restart restart_type = restart::permanent;
};

class supervisor {
 public:
  /// Starts the children in order. If one fails to start, the ones started
  /// are stopped and the error is rethrown.
  explicit supervisor(supervisor_options opts, std::vector<child_spec> children = {});
  /// Stops the supervisor and its children (if this handle owns it).
  ~supervisor();
  supervisor(supervisor&&) noexcept;
  supervisor& operator=(supervisor&&) noexcept;
  supervisor(const supervisor&) = delete;
  supervisor& operator=(const supervisor&) = delete;

  /// Adds and starts a child. value_error if the name is taken; the start
  /// function's error if it cannot start (the tree is unharmed).
  isola::actor start_child(child_spec spec);
  /// Stops a child (escalation as above); its spec stays for restart_child.
  void terminate_child(const std::string& name);
  /// Starts a terminated child again.
  isola::actor restart_child(const std::string& name);
  /// Forgets a terminated child. value_error while it runs.
  void delete_child(const std::string& name);

  /// The running actor of the child called name. nullopt if there is none,
  /// including between a crash and its restart: an incarnation that has
  /// ended is never returned, even before the supervisor has heard of its
  /// exit (OTP's which_children shows `restarting` then). After the restart,
  /// the new incarnation.
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
  std::shared_ptr<detail::sup_core> core_;
  bool owns_ = true;
};

}  // namespace isola
