// popen, the child's side: what runs between vfork and exec, what it is given
// (argv, envp, the paths to try for the program), and the error pipe it
// reports a failure on.
//
// Everything the child needs is built before the fork, because the caller
// may run threads: between vfork and exec the child makes only system calls
// (async-signal-safe), as CPython's _posixsubprocess does. vfork because it
// copies no page tables (a fork of a big parent costs milliseconds); under a
// sanitizer plain fork, whose child does not share the sanitizer's shadow
// memory with the suspended parent.
//
// What the parent sees: a failure before exec (setsid, the streams, chdir,
// exec itself) arrives as {step, errno} over a close-on-exec pipe and becomes
// an os_error from the constructor, the child already reaped; the parent
// reads nothing once exec succeeded, because exec closed the pipe. The
// program itself sees its caught signals reset to their default (SIGPIPE and
// SIGXFSZ too), an empty signal mask, and no descriptor of ours beyond 0, 1,
// 2 and pass_fds.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "isola/error.hpp"
#include "popen/popen_internal.hpp"

extern char** environ;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ISOLA_POPEN_USE_FORK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ISOLA_POPEN_USE_FORK 1
#endif
#endif

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace isola {
namespace popen_internal {

using detail::throw_errno;
using detail::unique_fd;

namespace {

enum child_step : int { step_session = 1, step_stdio, step_chdir, step_exec };

struct child_error {
  int step;
  int err;
};

[[noreturn]] void report_and_exit(int errfd, int step, int err) noexcept {
  child_error ce{step, err};
  ssize_t w;
  do w = ::write(errfd, &ce, sizeof ce);
  while (w < 0 && errno == EINTR);
  ::_exit(127);
}

// System calls only: this runs in a vfork child, on the parent's memory.
[[noreturn]] void exec_child(const child_plan& p) noexcept {
  // Caught signals to their default before the mask opens: a handler of the
  // parent's must never run here. SIGPIPE and SIGXFSZ to their default too
  // (Python's restore_signals): isola ignores SIGPIPE once it holds a pipe's
  // write end, and a program like `yes` relies on dying of it.
  for (int s = 1; s < NSIG; ++s) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    struct sigaction old {};
    if (::sigaction(s, nullptr, &old) != 0) continue;
    bool caught =
        (old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
    if (caught || s == SIGPIPE || s == SIGXFSZ) {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(s, &dfl, nullptr);
    }
  }
  if (p.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != p.parent) ::_exit(127);
  }
  if (p.new_session && ::setsid() < 0) report_and_exit(p.errfd, step_session, errno);
  for (int i = 0; i < 3; ++i)
    if (p.src[i] >= 0 && ::dup2(p.src[i], i) < 0) report_and_exit(p.errfd, step_stdio, errno);
  if (p.err_to_out && ::dup2(1, 2) < 0) report_and_exit(p.errfd, step_stdio, errno);
  // Every other descriptor closes on exec (the error pipe must stay open
  // until then, hence CLOEXEC rather than closing now).
  if (::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  for (std::size_t i = 0; i < p.npass; ++i) ::fcntl(p.pass[i], F_SETFD, 0);
  if (p.cwd && ::chdir(p.cwd) != 0) report_and_exit(p.errfd, step_chdir, errno);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // As execvp: ENOENT/ENOTDIR mean "try the next directory"; the first other
  // error (EACCES, ENOEXEC...) is the one worth reporting.
  int first_other = 0, last = ENOENT;
  for (char* const* c = p.candidates; *c; ++c) {
    ::execve(*c, p.argv, p.envp);
    last = errno;
    if (first_other == 0 && last != ENOENT && last != ENOTDIR) first_other = last;
  }
  report_and_exit(p.errfd, step_exec, first_other ? first_other : last);
}

void check_env_name(const std::string& k) {
  if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
    throw value_error("popen: illegal environment variable name '" + k + "'");
}

}  // namespace

int above_stdio(int fd) {
  if (fd >= 3) return fd;
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  ::close(fd);
  if (d < 0) throw_errno("fcntl(F_DUPFD_CLOEXEC)", e);
  return d;
}

pid_t start_child(const child_plan& plan) {
  // All signals blocked across vfork: the child shares our memory until it
  // execs, so no handler may run in it before it has reset them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
#ifdef ISOLA_POPEN_USE_FORK
  pid_t pid = ::fork();
#else
  pid_t pid = ::vfork();
#endif
  if (pid == 0) exec_child(plan);
  int e = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) throw_errno("vfork", e);
  return pid;
}

std::vector<std::string> build_env(const popen_options& o) {
  std::vector<std::string> env;
  if (o.env)
    for (auto& [k, v] : *o.env) check_env_name(k);
  for (auto& [k, v] : o.env_update) check_env_name(k);
  if (o.env) {
    for (auto& [k, v] : *o.env) env.push_back(k + "=" + v);
  } else {
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  }
  for (auto& [k, v] : o.env_update) {
    std::string prefix = k + "=";
    auto it = std::find_if(env.begin(), env.end(),
                           [&](const std::string& s) { return s.starts_with(prefix); });
    if (it != env.end())
      *it = prefix + v;
    else
      env.push_back(prefix + v);
  }
  return env;
}

std::string path_of(const std::vector<std::string>& env) {
  for (auto& e : env)
    if (e.starts_with("PATH=")) return e.substr(5);
  return "/bin:/usr/bin";  // Python's os.defpath
}

std::vector<std::string> candidates_for(const std::string& program, const std::string& path) {
  if (program.find('/') != std::string::npos) return {program};
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto end = path.find(':', start);
    std::string dir =
        path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    out.push_back((dir.empty() ? std::string(".") : dir) + "/" + program);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

error_pipe open_error_pipe() {
  int ep[2];
  if (::pipe2(ep, O_CLOEXEC) != 0) throw_errno("popen: pipe2");
  error_pipe p{unique_fd(ep[0]), unique_fd(ep[1])};
  p.write_end.reset(above_stdio(p.write_end.release()));
  return p;
}

void check_exec(pid_t pid, int err_read, const std::string& program, const std::string& cwd,
                const std::vector<std::string>& env) {
  child_error ce{};
  std::size_t got = 0;
  try {
    got = detail::read_full(err_read, &ce, sizeof ce);
  } catch (...) {
    got = sizeof ce;
    ce = {step_exec, EIO};
  }
  if (got == 0) return;  // exec closed the pipe: the program runs
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (got < sizeof ce) ce = {step_exec, EIO};
  std::string why = std::strerror(ce.err);
  std::string msg = "popen: cannot run '" + program + "': ";
  switch (ce.step) {
    case step_chdir: msg += "cannot change to directory '" + cwd + "': " + why; break;
    case step_session: msg += "setsid: " + why; break;
    case step_stdio: msg += "setting up its standard streams: " + why; break;
    default:
      msg += why;
      if (ce.err == ENOENT && program.find('/') == std::string::npos)
        msg += " (not found in PATH=" + path_of(env) + ")";
      else if (ce.err == EACCES)
        msg += " (is it an executable file?)";
      else if (ce.err == ENOEXEC)
        msg += " (not a binary, and a script needs a #! line)";
  }
  throw os_error(ce.err, msg);
}

}  // namespace popen_internal
}  // namespace isola
