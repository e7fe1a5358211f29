// The root's side of the actor layer: the registry of actors and inboxes,
// the CAF actor_system that hosts supervision, and the watchers that feed
// child exits (pidfds) and control channels into CAF's multiplexer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/mailbox.hpp"

namespace caf {
class actor_system;
}

namespace isola::detail {

/// Called on the multiplexer thread when an actor process has been reaped.
using exit_callback = std::function<void(const actor&, const exit_reason&)>;

/// Spawns an actor (root only); on_exit, if given, is told of its end.
actor node_spawn(const spawn_options& opts, const make_process_fn& make, exit_callback on_exit);

/// In a fork child of a process that ran the actor system: throws
/// start_method_error naming `what` and the fix (that system's threads did
/// not come with the fork, so its supervisors and pools would never answer).
void require_actor_system_here(const char* what);
/// True in such a fork child.
bool actor_system_inherited() noexcept;

/// The root's CAF actor system (started on first use).
caf::actor_system& node_system();

/// Forcefully ends an actor process: SIGKILL, with `why` as its exit reason.
void node_kill(std::uint64_t id, const exit_reason& why);
/// SIGTERM, with `why` as its exit reason if that is what ends it.
void node_terminate(std::uint64_t id, const exit_reason& why);
/// Sends sig to an actor's process; its exit reason is what the signal does.
void node_signal(std::uint64_t id, int sig);
/// Waits for an actor process to be reaped; false on timeout.
bool node_join(std::uint64_t id, std::optional<clock::time_point> deadline);
/// Waits until the actor has built its behavior (nullopt) or ended first
/// (its exit reason; also "did not start in time").
std::optional<exit_reason> node_wait_started(std::uint64_t id, clock::time_point deadline);
/// The exit reason of an ended actor (nullopt while it runs).
std::optional<exit_reason> node_reason(std::uint64_t id);
/// Whether an actor's process has ended, including one that has died but
/// whose exit the multiplexer has not handled yet.
bool node_process_ended(std::uint64_t id);

/// Runs at the start of the root's shutdown, before the node stops its
/// actors (supervisors register here).
void node_on_shutdown(std::function<void()> fn);

/// Puts an answer (reply, error reply, down notice) into an actor's or
/// inbox's mailbox without blocking the caller; dropped if it has ended.
void node_post_answer(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
                      bytes payload);

/// The sizes of the registry's tables (for the tests): none grows without
/// bound. dead is capped (the oldest records are forgotten; such an actor
/// still reads as ended, with an unknown reason); links go when either side
/// ends; notices for a full mailbox wait in a bounded parking, retried by one
/// thread for all of them.
struct registry_tables {
  std::size_t entries = 0;         // running actors and root threads' inboxes
  std::size_t dead = 0;            // exit records of ended actors
  std::size_t links = 0;           // link ends, over all entries
  std::size_t parked_notices = 0;  // notices waiting for room in a mailbox
  std::size_t notice_threads = 0;  // threads that deliver them (0 or 1)
};
registry_tables node_tables();
/// Exit records kept for ended actors (default_dead_records); for tests.
void node_set_dead_records_cap(std::size_t n);
constexpr std::size_t default_dead_records = 65536;
/// Notices parked for one mailbox at most.
constexpr std::size_t notice_parking = 4096;

}  // namespace isola::detail
