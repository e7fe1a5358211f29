// What the parts of popen share (private to runtime/src/popen/): the handle's
// state, deadlines, and the plan a child follows between vfork and exec.
//
// popen.cpp     the handle: state, registry and reaper, writer and reader,
//               the constructor and the methods that wait or signal
// exec_child.cpp the child between vfork and exec, what it is given (argv,
//               envp, the paths to try) and the error pipe it reports on
// communicate.cpp communicate(), without deadlock, resumable after a timeout
// shlex.cpp     shlex_split, shlex_quote, shlex_join
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "isola/popen.hpp"
#include "process/registry.hpp"
#include "sys/os.hpp"

namespace isola {

namespace popen_internal {

using clock = std::chrono::steady_clock;

detail::deadline deadline_after(duration t);
std::string seconds_text(duration t);

/// poll() until something is ready or the deadline passes (0).
int poll_until(pollfd* fds, nfds_t n, const detail::deadline& d);

/// O_NONBLOCK for a scope: our pipe ends stay blocking for a caller who uses
/// fd() directly, while timed writes must never block in write().
class nonblocking_scope {
 public:
  explicit nonblocking_scope(int fd) : fd_(fd) {
    flags_ = ::fcntl(fd_, F_GETFL);
    if (flags_ >= 0 && !(flags_ & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK);
  }
  ~nonblocking_scope() {
    if (flags_ >= 0 && !(flags_ & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags_);
  }
  nonblocking_scope(const nonblocking_scope&) = delete;
  nonblocking_scope& operator=(const nonblocking_scope&) = delete;

 private:
  int fd_;
  int flags_;
};

// ----------------------------------------------------- exec_child.cpp

/// Everything the child needs, built before the fork: between vfork and exec
/// the child only reads this and makes system calls.
struct child_plan {
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  char* const* candidates = nullptr;  // paths to try, null-terminated
  const char* cwd = nullptr;
  int src[3] = {-1, -1, -1};  // what goes on 0, 1, 2 (-1: leave as inherited)
  bool err_to_out = false;
  const int* pass = nullptr;
  std::size_t npass = 0;
  bool new_session = false;
  bool die_with_parent = false;
  pid_t parent = 0;
  int errfd = -1;
};

/// Moves fd to a number above 2, so that putting the child's streams on 0, 1
/// and 2 never overwrites another descriptor the child still needs.
int above_stdio(int fd);

std::vector<std::string> build_env(const popen_options& o);
std::string path_of(const std::vector<std::string>& env);
std::vector<std::string> candidates_for(const std::string& program, const std::string& path);
std::vector<char*> c_strings(std::vector<std::string>& v);

/// The close-on-exec pipe the child reports a failure before exec on.
struct error_pipe {
  detail::unique_fd read_end;
  detail::unique_fd write_end;  // above stdio, so that the child's dup2s spare it
};
error_pipe open_error_pipe();

/// vforks (forks under a sanitizer) a child that follows plan; the pid.
pid_t start_child(const child_plan& plan);

/// Waits on the error pipe until the child has exec'd (the pipe closes) or
/// reported a failure: then reaps it and throws the os_error that names the
/// step (chdir, setsid, the streams, exec).
void check_exec(pid_t pid, int err_read, const std::string& program, const std::string& cwd,
                const std::vector<std::string>& env);

}  // namespace popen_internal

// ----------------------------------------------------- popen.cpp

struct popen::state {
  std::vector<std::string> args;
  std::string command;  // args as one line, for messages
  std::shared_ptr<detail::process_state> proc;
  writer in;
  reader out;
  reader err;
  bool piped[3] = {false, false, false};
  bool communication_started = false;
  bool communicated = false;
  std::string saved_input;  // what a timed-out communicate had not written yet
  std::size_t saved_off = 0;

  void require_owner() const {
    if (!proc || proc->owner != ::getpid())
      throw process_error("popen: started by process " + std::to_string(proc ? proc->owner : 0) +
                          "; only that process can wait for it or use its pipes: " + command);
  }

  // Every popen of this process, so that a fork child can close their
  // descriptors; and the programs of destroyed popens still to be reaped.
  struct registry {
    std::mutex m;
    std::vector<state*> live;
    std::vector<std::shared_ptr<detail::process_state>> abandoned;
    detail::unique_fd wake;  // eventfd: tells the reaper thread to look again
    bool reaper_running = false;
  };

  static registry& reg();
  static void after_fork_in_child();
  void enroll();
  void withdraw() noexcept;
  static void reaper_loop();
  static void abandon(std::shared_ptr<detail::process_state> p) noexcept;
  /// Reaps what has ended among the abandoned programs, without waiting.
  static void reap_abandoned() noexcept;
  /// What the destructor and a move-assignment do with the old state.
  void release() noexcept;

  /// Sets up the child's side of each standard stream as opts asks (pipes,
  /// /dev/null, a descriptor) and keeps our ends of the pipes.
  void open_streams(const popen_options& opts, popen_internal::child_plan& plan,
                    detail::unique_fd (&child_side)[3]);

  /// Throws value_error where communicate(input) cannot go on (communicate.cpp).
  void check_communicate(std::string_view input) const;
};

}  // namespace isola
