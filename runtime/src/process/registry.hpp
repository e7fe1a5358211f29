// The runtime's per-process state: who this process is, its children, the
// forkserver client, and the child-side entry points shared by every start
// method. Internal; never installed.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "isola/detail/deadline.hpp"
#include "isola/logging.hpp"
#include "isola/process.hpp"
#include "isola/start_method.hpp"
#include "sys/os.hpp"

namespace isola::detail {

using clock = std::chrono::steady_clock;

class forkserver;

/// The shared part of a process handle: also held by the registry so that a
/// child outlives a dropped handle until it is joined or terminated.
struct process_state {
  std::string name;
  bool daemon = false;
  std::optional<start_method> method;
  std::vector<int> identity;
  std::optional<isola::sandbox> box;  // as prepared by start()
  std::string cgroup;                 // the child's own cgroup (sandbox memory)
  std::string filter;                 // the sandbox's seccomp program

  /// The state behind a handle (for the actor layer's exit reasons).
  static process_state& of(const process& p) { return *p.state_; }

  enum class phase { initial, started, closed };
  phase ph = phase::initial;
  pid_t owner = 0;  // the process that started it: only it may wait on it
  pid_t pid = 0;
  unique_fd pidfd;
  unique_fd status_fd;  // forkserver children: the zygote writes the wait status here
  // A forkserver child whose zygote died first: it lives on, re-parented
  // away from us; its end is seen on the pidfd, its status is lost (255).
  bool orphaned = false;
  std::optional<int> exitcode;
  mutable std::mutex m;

  /// Non-blocking: reaps the child if it has ended. True once ended.
  bool try_reap();
  /// Blocks until the child ends or the deadline passes. True once ended.
  bool wait(const deadline& d);
};

/// What a child needs to know about itself, under every start method.
struct child_identity {
  std::string name;
  bool daemon = false;
  std::vector<int> identity;
  std::string parent_name;
  int parent_pid = 0;
  int log_level = 0;
  bool log_handler = false;
  // The method it was started with: the child's get_start_method(), as in a
  // Python child (its context's method), so that its own children default
  // to it too.
  start_method method = start_method::fork;
  std::optional<isola::sandbox> box;  // applied by child_main before the target
  std::string cgroup;
  std::string filter;  // the seccomp program, built by the parent

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, daemon, identity, parent_name, parent_pid, log_level, log_handler, method, box,
       cgroup, filter);
  }
};

/// A function's place in the program: the loaded object it lives in (""
/// for the main executable) and its offset from that object's base.
struct code_ref {
  std::string module;
  std::uint64_t offset = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(module, offset);
  }
};
code_ref to_code_ref(const void* address);
const void* resolve(const code_ref& ref);  // throws start_method_error

/// A registration the parent hands down (function_registry.hpp).
struct inherited_function {
  code_ref ref;
  std::uint64_t type = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(ref, type);
  }
};

/// What spawn and forkserver send to the child.
struct child_payload {
  child_identity who;
  std::vector<inherited_function> functions;  // the parent's registrations
  bool has_call = false;
  code_ref trampoline;
  bool has_target = false;
  code_ref target;
  bytes args;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(who, functions, has_call, trampoline, has_target, target, args);
  }
};

struct globals {
  std::mutex m;  // guards everything below but the atomics
  process_info self{"MainProcess", 0, false};
  std::optional<process_info> parent;
  // A child's pidfd of its parent, opened by the first parent_process() (a
  // child starts with no descriptor of isola's; it dies with its parent, so
  // that pid is its parent's as long as it lives).
  unique_fd parent_pidfd;
  bool parent_pidfd_opened = false;
  std::vector<int> identity;
  int counter = 0;
  std::vector<std::shared_ptr<process_state>> children;
  std::atomic<start_method> default_method{start_method::fork};
  bool runtime_present = false;
  std::vector<std::string> argv;
  bool shutdown_done = false;
  bool atexit_registered = false;
  std::atomic<bool> warned_threads{false};
  std::unique_ptr<forkserver> zygote;
  std::mutex zygote_m;
};

/// This process's state; never destroyed (used from atexit handlers).
globals& g();

/// The threads of this process now (1 if /proc cannot tell).
int thread_count() noexcept;

/// Drops children that have ended from the registry. Caller holds g().m.
void reap_registry_locked();

/// Python's at-exit: terminate daemon children, join the others. Idempotent.
void shutdown_children() noexcept;

/// Registers shutdown_children with atexit once.
void ensure_atexit();

/// Launches a payload with a fresh exec of this program; `fds` (handles in
/// the arguments) travel with it.
void launch_spawn(process_state& st, const child_payload& payload, const std::vector<int>& fds);
/// Launches a payload from the forkserver zygote (started if needed).
void launch_forkserver(process_state& st, const child_payload& payload,
                       const std::vector<int>& fds);
/// Stops the zygote (it waits for its children first). No-op without one.
void stop_forkserver() noexcept;
/// Starts the zygote now if there is none.
void ensure_forkserver();
/// In a fork child: forget everything that belongs to the parent (its
/// children, its zygote), closing the inherited descriptors if close_fds
/// (the zygote has closed them by number already).
void forget_parent_state_after_fork(bool close_fds);

/// Runs in the child under every method: becomes `who`, runs body, then does
/// the child's own shutdown and _exits with the Python-style code.
[[noreturn]] void child_main(const child_identity& who, const std::function<int()>& body);

/// Runs a payload received by a spawn or forkserver child, with the
/// descriptors that came with it. Never returns.
[[noreturn]] void run_payload_child(const child_payload& payload, std::vector<int> fds);

/// Ends the current process (child: _exit after shutdown; root: std::exit).
[[noreturn]] void finish_process(int code);

/// The spawn child entry: if this process was started by spawn, runs the
/// target and never returns; otherwise returns.
void maybe_run_spawn_child();

child_identity identity_for_child(const process_state& st);

}  // namespace isola::detail
