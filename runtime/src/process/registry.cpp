#include "process/registry.hpp"

#include "process/shutdown_hook.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <new>

#include "process/forkserver.hpp"

namespace isola::detail {

globals& g() {
  static auto* state = new globals;  // leaked on purpose: atexit handlers use it
  return *state;
}

bool process_state::try_reap() {
  std::lock_guard lk(m);
  if (exitcode) return true;
  if (status_fd && !orphaned) {
    pollfd p{status_fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    int status = 0;
    auto n = read_full(status_fd.get(), &status, sizeof status);
    // The pipe stays open until close(): another thread may be polling it in
    // wait(), and a closed descriptor number can be reused by anything.
    if (n == sizeof status) {
      exitcode = exitcode_from_wait_status(status);
      return true;
    }
    // No status: the zygote died before this child. The child lives on (as
    // Python's forkserver children do); from now on its pidfd tells its end.
    orphaned = true;
  }
  siginfo_t si{};
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd.get()), &si,
               WEXITED | WNOHANG) != 0) {
    if (errno == ECHILD) {
      if (orphaned) {
        // Not our child: readable once it has ended, with a status nobody
        // passes on. Python's forkserver reports 255 in this case.
        pollfd p{pidfd.get(), POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        exitcode = 255;
        return true;
      }
      // Reaped behind our back (a waitpid(-1) elsewhere in the program): the
      // child has ended but its status is lost.
      get_logger().warning("exit status of " + name + " was collected by someone else");
      exitcode = 255;
      return true;
    }
    throw_errno("waitid");
  }
  if (si.si_pid == 0) return false;
  exitcode = exitcode_from_siginfo(si.si_code, si.si_status);
  return true;
}

bool process_state::wait(const deadline& d) {
  const auto until = d.until();
  if (!until && !status_fd) {
    // A direct child, no deadline: block in the kernel until it exits (without
    // reaping, so that a concurrent is_alive() stays correct), then reap.
    siginfo_t si{};
    int r;
    do
      r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd.get()), &si,
                   WEXITED | WNOWAIT);
    while (r != 0 && errno == EINTR);
    if (try_reap()) return true;
  }
  for (;;) {
    if (try_reap()) return true;
    int fd;
    {
      std::lock_guard lk(m);
      fd = status_fd && !orphaned ? status_fd.get() : pidfd.get();
    }
    if (!wait_readable(fd, until)) return try_reap();
    // A pidfd is readable once the child has exited; the zygote's status pipe
    // once it has reaped (or died: then the loop waits on the pidfd). Either
    // way the reap below does not block for long.
    if (try_reap()) return true;
    if (d.expired()) return false;
    ::usleep(200);
  }
}

void reap_registry_locked() {
  auto& c = g().children;
  std::erase_if(c, [](const std::shared_ptr<process_state>& s) {
    return s->owner != ::getpid() || s->try_reap();
  });
}

void shutdown_children() noexcept {
  auto& gl = g();
  std::vector<std::shared_ptr<process_state>> kids;
  {
    std::lock_guard lk(gl.m);
    if (gl.shutdown_done) return;
    gl.shutdown_done = true;
  }
  // Higher layers (the actor layer's supervisors) stand down first, so that
  // nothing restarts the children stopped below.
  run_shutdown_hooks();
  {
    std::lock_guard lk(gl.m);
    reap_registry_locked();
    kids = gl.children;
  }
  auto& log = get_logger();
  log.info("process shutting down");
  if (kids.empty() && !gl.zygote) return;  // the common child: nothing to do, nothing to touch
  try {
    for (auto& k : kids) {
      if (k->daemon && !k->try_reap()) {
        log.info("calling terminate() for daemon " + k->name);
        pidfd_signal(k->pidfd.get(), SIGTERM);
      }
    }
    // As Python: the children alive now are each announced, then joined.
    std::erase_if(kids, [](auto& k) { return k->try_reap(); });
    for (auto& k : kids) {
      log.info("calling join() for process " + k->name);
      k->wait(deadline::forever());
    }
  } catch (const std::exception& e) {
    log.error(std::string("error while shutting down children: ") + e.what());
  }
  {
    std::lock_guard lk(gl.m);
    gl.children.clear();
  }
  stop_forkserver();
}

void ensure_atexit() {
  auto& gl = g();
  std::lock_guard lk(gl.m);
  if (gl.atexit_registered) return;
  gl.atexit_registered = true;
  std::atexit([] { shutdown_children(); });
}

child_identity identity_for_child(const process_state& st) {
  child_identity who;
  who.name = st.name;
  who.daemon = st.daemon;
  who.identity = st.identity;
  auto self = current_process();
  who.parent_name = self.name;
  who.parent_pid = self.pid;
  auto& log = get_logger();
  who.log_level = static_cast<int>(log.level());
  who.log_handler = log.has_handler();
  who.method = st.method.value_or(get_start_method());
  who.box = st.box;
  who.cgroup = st.cgroup;
  who.filter = st.filter;
  return who;
}

void forget_parent_state_after_fork(bool close_fds) {
  auto& gl = g();
  // Whoever held these in the parent is not in this process.
  new (&gl.m) std::mutex;
  for (auto& k : gl.children) {
    int a = k->pidfd.release(), b = k->status_fd.release();
    if (close_fds) {
      if (a >= 0) ::close(a);
      if (b >= 0) ::close(b);
    }
  }
  gl.children.clear();
  {
    int p = gl.parent_pidfd.release();  // our parent's, not this child's
    if (close_fds && p >= 0) ::close(p);
    gl.parent_pidfd_opened = false;
  }
  gl.shutdown_done = false;
  gl.counter = 0;
  forget_forkserver_after_fork(close_fds);
}

}  // namespace isola::detail
