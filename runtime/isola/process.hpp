// isola/process.hpp — a child OS process running a target (Python's Process).
//
//   isola::process p(sing, "Jam", "不露声色");
//   p.start();
//   p.join();               // or join(2s) -> bool, terminate(), kill()
//   if (p.exitcode() == 0) ...
//
// What the child and the parent see:
// - exitcode() is empty until the child has ended and been reaped; then 0 on
//   success, N for isola::exit(N) or a target returning int N, 1 for an
//   uncaught exception (stderr gets "<name>: <what>"), -N if killed by signal N.
// - The child dies with its parent: PR_SET_PDEATHSIG(SIGKILL), with a check of
//   getppid() that closes the race with a parent dying during start().
// - The child inherits no descriptor of isola's (every one is O_CLOEXEC, and
//   under fork the ones isola holds are closed in the child); under spawn and
//   forkserver it inherits stdin, stdout and stderr only.
// - Signals the parent catches start at their default in the child, and the
//   child's signal mask is empty — as after an exec, under every method.
// - A process handle that is destroyed while its child runs does not kill it:
//   the child is joined (or, if daemon, terminated) when the runtime ends, and
//   reaped by then at the latest, so no zombie is left.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "isola/detail/launch.hpp"
#include "isola/sandbox.hpp"
#include "isola/start_method.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

struct process_options {
  /// Default: "process-N" in the root, "process-1:N" in process-1, ...
  std::string name{};
  /// Default: the daemon flag of the current process.
  std::optional<bool> daemon{};
  /// Default: get_start_method() at start().
  std::optional<start_method> method{};
  /// What the child may do (isola/sandbox.hpp), applied before the target
  /// runs. start() throws value_error / os_error for one that cannot be honoured.
  std::optional<isola::sandbox> sandbox{};
};

/// What current_process(), parent_process() and active_children() return.
struct process_info {
  std::string name;
  int pid = 0;
  bool daemon = false;
};

/// What parent_process() returns (Python's _ParentProcess): who the parent
/// is, and a pidfd of it (opened by the first parent_process() in this
/// process, kept until it ends) to watch it by.
struct parent_info : process_info {
  /// Whether the parent still runs.
  bool is_alive() const;
  /// Waits for the parent to end.
  void join() const;
  /// Waits at most t; whether the parent has ended.
  bool join(duration t) const;
  /// A descriptor that becomes readable when the parent ends (-1 if it had
  /// already ended at the first parent_process()).
  int sentinel() const noexcept { return sentinel_; }

  int sentinel_ = -1;
};

namespace detail {
struct process_state;
}

class process {
 public:
  /// A process with no target: run() does nothing unless overridden.
  process();
  explicit process(process_options opts);

  template <class F, class... A>
  requires(!std::is_same_v<std::remove_cvref_t<F>, process_options>) explicit process(F&& target,
                                                                                      A&&... args)
      : process(process_options{}, std::forward<F>(target), std::forward<A>(args)...) {}

  template <class F, class... A>
  process(process_options opts, F&& target, A&&... args) : process(std::move(opts)) {
    spec_ = detail::make_launch_spec(std::forward<F>(target), std::forward<A>(args)...);
  }

  /// Does not stop a running child (see the header comment); never throws.
  virtual ~process();

  process(process&&) noexcept;
  process& operator=(process&&) noexcept;
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// Starts the child. Throws process_error if already started or closed,
  /// start_method_error if the method cannot run this target. Afterwards the
  /// parent drops its copy of the target and arguments (as Python does), which
  /// closes handles that were moved in as arguments.
  void start();

  /// Waits for the child to end. process_error if never started.
  void join();
  /// Waits at most t; returns whether the child has ended.
  bool join(duration t);

  bool is_alive() const;

  /// SIGTERM. A no-op on a child that has already ended.
  void terminate();
  /// SIGKILL. A no-op on a child that has already ended.
  void kill();
  /// SIGINT (Python 3.14's Process.interrupt()). A no-op on a child that has
  /// already ended. In the child, a target blocked in a system call gets
  /// isola::keyboard_interrupt (its destructors run, the exit code is 1);
  /// one computing, or one that set SIGINT back to SIG_DFL, ends by the
  /// signal (-SIGINT); one that ignores SIGINT goes on.
  void interrupt();

  /// Releases the handle's resources. process_error while the child runs;
  /// afterwards every method but name(), daemon() and exitcode() throws.
  void close();

  std::optional<int> exitcode() const;
  /// 0 before start().
  int pid() const;
  /// A pidfd: becomes readable (poll/epoll) when the child ends.
  /// process_error before start().
  int sentinel() const;

  const std::string& name() const;
  void name(std::string n);
  bool daemon() const;
  /// process_error after start().
  void daemon(bool d);

 protected:
  /// What the child runs. The default calls the target given to the
  /// constructor. Override it in a subclass (fork start method only: the
  /// child needs the object's memory).
  virtual void run();

 private:
  friend struct detail::process_state;
  int run_in_child();

  std::shared_ptr<detail::process_state> state_;
  detail::launch_spec spec_;
  int target_exitcode_ = 0;
};

/// The process this code runs in ("MainProcess" in the root).
process_info current_process();
/// The process that started this one, to ask is_alive() and join(); empty
/// in the root.
std::optional<parent_info> parent_process();
/// Children of this process still running (reaps those that have ended).
std::vector<process_info> active_children();
/// Logical CPUs this process may run on.
unsigned cpu_count();

/// Ends the current process with `code` without returning: in a child the
/// exit code its parent sees; in the root, std::exit after the runtime's
/// clean-up. Stack objects are not destroyed (as with os._exit / std::exit).
[[noreturn]] void exit(int code);

}  // namespace isola
