// popen: an external program as a child process (Python's subprocess.Popen).
//
// How a child starts. Everything the child needs (argv, envp, the paths to try
// for the program, the descriptors to put on 0/1/2) is built before the fork,
// because the caller may run threads: between vfork and exec the child makes
// only system calls (async-signal-safe), as CPython's _posixsubprocess does.
// vfork because it copies no page tables (a fork of a big parent costs
// milliseconds); under a sanitizer plain fork, whose child does not share the
// sanitizer's shadow memory with the suspended parent. The child reports a
// failure before exec (chdir, exec itself) as {step, errno} over a
// close-on-exec pipe: the parent reads nothing once exec succeeded, because
// exec closed the pipe.
//
// Reaping. The exit status comes through a pidfd (detail::process_state, the
// same code isola's processes use), so wait(t) sleeps in poll() on it. A
// popen destroyed while its program runs hands its process_state to a reaper
// thread that exists only while such programs run.
#include "isola/popen.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "isola/error.hpp"
#include "isola/wait.hpp"
#include "sys/os.hpp"
#include "process/registry.hpp"

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

using detail::throw_errno;
using detail::unique_fd;
using clock = std::chrono::steady_clock;

namespace {

clock::time_point deadline_after(duration t) {
  // Beyond ~30 years a deadline is "never"; the cap keeps the conversion to
  // nanoseconds from overflowing.
  auto capped = std::min(t, duration(1e9));
  return clock::now() + std::chrono::duration_cast<clock::duration>(std::max(capped, duration(0)));
}

std::optional<clock::time_point> opt(const clock::time_point* d) {
  return d ? std::optional<clock::time_point>(*d) : std::nullopt;
}

std::string seconds_text(duration t) {
  std::ostringstream os;
  os << t.count() << " s";
  return os.str();
}

/// poll() until something is ready or the deadline passes (0).
int poll_until(pollfd* fds, nfds_t n, const clock::time_point* deadline) {
  using namespace std::chrono;
  for (;;) {
    int ms = -1;
    if (deadline) {
      auto left = duration_cast<milliseconds>(*deadline - clock::now() + 999us);
      ms = static_cast<int>(std::clamp<long long>(left.count(), 0, 1 << 30));
    }
    int r = ::poll(fds, n, ms);
    if (r > 0) return r;
    if (r == 0) {
      if (!deadline || clock::now() >= *deadline) return 0;
      continue;
    }
    if (errno != EINTR) throw_errno("poll");
  }
}

/// Moves fd to a number above 2, so that putting the child's streams on 0, 1
/// and 2 never overwrites another descriptor the child still needs.
int above_stdio(int fd) {
  if (fd >= 3) return fd;
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  ::close(fd);
  if (d < 0) throw_errno("fcntl(F_DUPFD_CLOEXEC)", e);
  return d;
}

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

// ---------------------------------------------------------------------------
// The child between vfork and exec
// ---------------------------------------------------------------------------

enum child_step : int { step_session = 1, step_stdio, step_chdir, step_exec };

struct child_error {
  int step;
  int err;
};

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
    bool caught = (old.sa_flags & SA_SIGINFO) ||
                  (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
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

// ---------------------------------------------------------------------------
// Arguments and environment
// ---------------------------------------------------------------------------

void check_env_name(const std::string& k) {
  if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
    throw value_error("popen: illegal environment variable name '" + k + "'");
}

std::vector<std::string> build_env(const popen_options& o) {
  std::vector<std::string> env;
  if (o.env) for (auto& [k, v] : *o.env) check_env_name(k);
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
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
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

const char* stream_name(int i) { return i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr"; }

}  // namespace

// ---------------------------------------------------------------------------
// State, registry, reaper
// ---------------------------------------------------------------------------

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
    unique_fd wake;  // eventfd: tells the reaper thread to look again
    bool reaper_running = false;
  };

  static registry& reg() {
    static registry* r = [] {
      auto* p = new registry;  // leaked on purpose: used by atfork handlers and the reaper
      ::pthread_atfork([] { reg().m.lock(); }, [] { reg().m.unlock(); }, after_fork_in_child);
      return p;
    }();
    return *r;
  }

  // The child of a fork holds copies of its parent's pipe ends and pidfds:
  // close them, so that a program waiting for EOF on its stdin is not kept
  // waiting by a copy in a child that never heard of it.
  static void after_fork_in_child() {
    auto& r = reg();
    r.m.unlock();  // locked by the prepare handler, in this same thread
    for (state* s : r.live) {
      s->in.close();
      s->out.close();
      s->err.close();
      if (s->proc) s->proc->pidfd.reset();
    }
    r.live.clear();
    for (auto& a : r.abandoned) a->pidfd.reset();
    r.abandoned.clear();
    r.wake.reset();
    r.reaper_running = false;  // the thread was not copied
  }

  void enroll() {
    auto& r = reg();
    std::lock_guard lk(r.m);
    r.live.push_back(this);
  }

  void withdraw() noexcept {
    auto& r = reg();
    std::lock_guard lk(r.m);
    std::erase(r.live, this);
  }

  static void reaper_loop() {
    auto& r = reg();
    std::vector<pollfd> fds;
    for (;;) {
      {
        std::lock_guard lk(r.m);
        std::erase_if(r.abandoned, [](const std::shared_ptr<detail::process_state>& s) {
          try {
            return s->try_reap();
          } catch (...) {
            return true;  // nothing more can be learnt about it
          }
        });
        if (r.abandoned.empty()) {
          r.reaper_running = false;
          r.wake.reset();  // nothing of the reaper stays open while it is not needed
          return;
        }
        fds.clear();
        fds.push_back({r.wake.get(), POLLIN, 0});
        for (auto& s : r.abandoned) fds.push_back({s->pidfd.get(), POLLIN, 0});
      }
      // Only this thread removes entries (and closes their pidfds), so the
      // descriptors polled here stay open meanwhile.
      if (::poll(fds.data(), fds.size(), -1) > 0 && (fds[0].revents & POLLIN)) {
        std::uint64_t v;
        (void)!::read(fds[0].fd, &v, sizeof v);
      }
    }
  }

  static void abandon(std::shared_ptr<detail::process_state> p) noexcept {
    auto& r = reg();
    std::lock_guard lk(r.m);
    try {
      r.abandoned.push_back(std::move(p));
      if (!r.wake) r.wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (r.reaper_running) {
        std::uint64_t one = 1;
        (void)!::write(r.wake.get(), &one, sizeof one);
        return;
      }
      std::thread(reaper_loop).detach();
      r.reaper_running = true;
    } catch (...) {
      // No thread: the next popen constructed reaps it (reap_abandoned).
    }
  }

  /// Reaps what has ended among the abandoned programs, without waiting.
  static void reap_abandoned() noexcept {
    auto& r = reg();
    std::lock_guard lk(r.m);
    if (r.reaper_running) return;  // the thread does it
    std::erase_if(r.abandoned, [](const std::shared_ptr<detail::process_state>& s) {
      try {
        return s->try_reap();
      } catch (...) {
        return true;
      }
    });
  }

  /// What the destructor and a move-assignment do with the old state.
  void release() noexcept {
    withdraw();
    in.close();
    out.close();
    err.close();
    try {
      if (proc && proc->owner == ::getpid() && proc->pidfd && !proc->try_reap())
        abandon(std::move(proc));
    } catch (...) {
    }
  }
};

// ---------------------------------------------------------------------------
// writer, reader
// ---------------------------------------------------------------------------

void popen::writer::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::size_t popen::writer::write_until(std::string_view data, const clock::time_point* deadline) {
  if (fd_ < 0) throw value_error("popen: write to a closed stdin");
  nonblocking_scope nb(fd_);
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd_, data.data() + off, data.size() - off);
    if (w > 0) {
      off += static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN) throw_errno("popen: write to the program's stdin");
    pollfd p{fd_, POLLOUT, 0};
    if (poll_until(&p, 1, deadline) == 0) break;
  }
  return off;
}

void popen::writer::write(std::string_view data) { write_until(data, nullptr); }

void popen::writer::write(std::string_view data, duration timeout) {
  auto deadline = deadline_after(timeout);
  if (write_until(data, &deadline) < data.size())
    throw timeout_error("popen: writing to the program's stdin timed out after " +
                        seconds_text(timeout));
}

std::size_t popen::writer::try_write(std::string_view data) {
  auto now = clock::now();
  return write_until(data, &now);
}

void popen::reader::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
  buf_.shrink_to_fit();
  head_ = scanned_ = 0;
}

void popen::reader::read_available() {
  if (head_ == buf_.size()) {
    buf_.clear();
    head_ = scanned_ = 0;
  } else if (head_ >= (std::size_t{64} << 10) && head_ * 2 >= buf_.size()) {
    buf_.erase(0, head_);
    scanned_ -= head_;
    head_ = 0;
  }
  // Read what the pipe holds in one go, into the string itself.
  int avail = 0;
  if (::ioctl(fd_, FIONREAD, &avail) != 0 || avail <= 0) avail = 4096;
  std::size_t old = buf_.size();
  if (buf_.capacity() - old < static_cast<std::size_t>(avail))
    buf_.reserve(std::max(old * 2, old + static_cast<std::size_t>(avail)));
  buf_.resize(old + static_cast<std::size_t>(avail));
  ssize_t r;
  do r = ::read(fd_, buf_.data() + old, static_cast<std::size_t>(avail));
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    buf_.resize(old);
    if (e == EAGAIN) return;
    throw_errno("popen: read from the program", e);
  }
  buf_.resize(old + static_cast<std::size_t>(r));
  if (r == 0) eof_ = true;
}

bool popen::reader::fill(const clock::time_point* deadline) {
  if (fd_ < 0) throw value_error("popen: read from a closed pipe");
  if (eof_) return true;
  if (!detail::wait_readable(fd_, opt(deadline))) return false;
  read_available();
  return true;
}

std::string popen::reader::take_all() {
  std::string s;
  if (head_ == 0)
    s = std::move(buf_);
  else
    s = buf_.substr(head_);
  buf_.clear();
  head_ = scanned_ = 0;
  return s;
}

std::optional<std::string> popen::reader::take_line(bool at_eof_too) {
  auto nl = buf_.find('\n', std::max(head_, scanned_));
  if (nl != std::string::npos) {
    std::string line = buf_.substr(head_, nl + 1 - head_);
    head_ = scanned_ = nl + 1;
    return line;
  }
  scanned_ = buf_.size();
  if (at_eof_too && eof_ && head_ < buf_.size()) {
    std::string line = buf_.substr(head_);
    head_ = scanned_ = buf_.size();
    return line;
  }
  return std::nullopt;
}

std::string popen::reader::read() {
  while (!eof_) fill(nullptr);
  return take_all();
}

std::string popen::reader::read(duration timeout) {
  auto deadline = deadline_after(timeout);
  while (!eof_)
    if (!fill(&deadline))
      throw timeout_error("popen: no end of output within " + seconds_text(timeout));
  return take_all();
}

std::string popen::reader::try_read() {
  auto now = clock::now();
  if (!eof_) fill(&now);  // one read: a fast writer must not keep this call going
  return take_all();
}

std::optional<std::string> popen::reader::read_line() {
  for (;;) {
    if (auto l = take_line(true)) return l;
    if (eof_) return std::nullopt;
    fill(nullptr);
  }
}

std::optional<std::string> popen::reader::read_line(duration timeout) {
  auto deadline = deadline_after(timeout);
  for (;;) {
    if (auto l = take_line(true)) return l;
    if (eof_) return std::nullopt;
    if (!fill(&deadline)) throw timeout_error("popen: no line within " + seconds_text(timeout));
  }
}

std::optional<std::string> popen::reader::try_read_line() {
  for (;;) {
    if (auto l = take_line(true)) return l;
    if (eof_) return std::nullopt;
    auto now = clock::now();
    if (!fill(&now)) return std::nullopt;
  }
}

waitable popen::reader::wait_handle() const {
  // Ready when read_line() would not block: a whole line is here, or EOF.
  return waitable(fd_, [this] {
    return eof_ || buf_.find('\n', std::max(head_, scanned_)) != std::string::npos;
  });
}

// ---------------------------------------------------------------------------
// popen
// ---------------------------------------------------------------------------

popen::popen(std::string_view command, popen_options opts)
    : popen(opts.shell ? std::vector<std::string>{std::string(command)} : shlex_split(command),
            std::move(opts)) {}

popen::popen(std::initializer_list<std::string> args, popen_options opts)
    : popen(std::vector<std::string>(args), std::move(opts)) {}

popen::popen(std::vector<std::string> args, popen_options opts) : st_(std::make_unique<state>()) {
  state::reap_abandoned();
  auto& s = *st_;
  if (args.empty()) throw value_error("popen: no program to run (the argument list is empty)");
  if (opts.shell) args.insert(args.begin(), {"/bin/sh", "-c"});
  s.args = std::move(args);
  s.command = shlex_join(s.args);
  std::string program = opts.executable.empty() ? s.args[0] : opts.executable;

  auto env = build_env(opts);
  auto candidates = candidates_for(program, path_of(env));
  auto argv_c = c_strings(s.args);
  auto envp_c = c_strings(env);
  auto cand_c = c_strings(candidates);

  for (int fd : opts.pass_fds) {
    if (fd < 3) throw value_error("popen: pass_fds cannot hold " + std::to_string(fd) +
                                  "; set .in, .out or .err for the standard streams");
    if (::fcntl(fd, F_GETFD) < 0) throw_errno("popen: pass_fds holds " + std::to_string(fd));
  }

  child_plan plan;
  unique_fd child_side[3];
  const stdio* want[3] = {&opts.in, &opts.out, &opts.err};
  for (int i = 0; i < 3; ++i) {
    switch (want[i]->how()) {
      case stdio::kind::inherit:
        break;
      case stdio::kind::pipe: {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("popen: pipe2");
        unique_fd r(p[0]), w(p[1]);
        r.reset(above_stdio(r.release()));
        w.reset(above_stdio(w.release()));
        if (i == 0) {
          detail::ignore_sigpipe();  // a write to a program that quit is EPIPE, not our death
          child_side[i] = std::move(r);
          s.in.fd_ = w.release();
        } else {
          child_side[i] = std::move(w);
          (i == 1 ? s.out : s.err).fd_ = r.release();
        }
        s.piped[i] = true;
        break;
      }
      case stdio::kind::devnull: {
        int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) throw_errno("popen: open /dev/null");
        child_side[i].reset(above_stdio(fd));
        break;
      }
      case stdio::kind::to_stdout:
        if (i != 2) throw value_error(std::string("popen: stdio::to_stdout is for stderr, not ") + stream_name(i));
        plan.err_to_out = true;
        break;
      case stdio::kind::fd: {
        int d = ::fcntl(want[i]->descriptor(), F_DUPFD_CLOEXEC, 3);
        if (d < 0)
          throw_errno("popen: stdio::fd(" + std::to_string(want[i]->descriptor()) + ") for " +
                      stream_name(i));
        child_side[i].reset(d);
        break;
      }
    }
    plan.src[i] = child_side[i].get();
  }

  int ep[2];
  if (::pipe2(ep, O_CLOEXEC) != 0) throw_errno("popen: pipe2");
  unique_fd err_r(ep[0]), err_w(ep[1]);
  err_w.reset(above_stdio(err_w.release()));

  plan.argv = argv_c.data();
  plan.envp = envp_c.data();
  plan.candidates = cand_c.data();
  plan.cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();
  plan.pass = opts.pass_fds.data();
  plan.npass = opts.pass_fds.size();
  plan.new_session = opts.start_new_session;
  plan.die_with_parent = opts.die_with_parent;
  plan.parent = ::getpid();
  plan.errfd = err_w.get();

  pid_t pid = start_child(plan);
  err_w.reset();
  for (auto& c : child_side) c.reset();

  child_error ce{};
  std::size_t got = 0;
  try {
    got = detail::read_full(err_r.get(), &ce, sizeof ce);
  } catch (...) {
    got = sizeof ce;
    ce = {step_exec, EIO};
  }
  if (got > 0) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got < sizeof ce) ce = {step_exec, EIO};
    std::string why = std::strerror(ce.err);
    std::string msg = "popen: cannot run '" + program + "': ";
    switch (ce.step) {
      case step_chdir:
        msg += "cannot change to directory '" + opts.cwd + "': " + why;
        break;
      case step_session:
        msg += "setsid: " + why;
        break;
      case step_stdio:
        msg += "setting up its standard streams: " + why;
        break;
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

  auto proc = std::make_shared<detail::process_state>();
  proc->name = s.command;
  proc->ph = detail::process_state::phase::started;
  proc->owner = ::getpid();
  proc->pid = pid;
  try {
    proc->pidfd.reset(detail::pidfd_open(pid));
  } catch (...) {
    ::kill(pid, SIGKILL);
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  s.proc = std::move(proc);
  s.enroll();
}

popen::~popen() {
  if (st_) st_->release();
}

popen::popen(popen&&) noexcept = default;

popen& popen::operator=(popen&& o) noexcept {
  if (this != &o) {
    if (st_) st_->release();
    st_ = std::move(o.st_);
  }
  return *this;
}

popen::state& popen::st() const {
  if (!st_) throw value_error("popen: this object was moved from");
  return *st_;
}

const std::vector<std::string>& popen::args() const { return st().args; }

int popen::pid() const { return st().proc->pid; }

std::optional<int> popen::poll() {
  auto& s = st();
  s.require_owner();
  if (s.proc->try_reap()) return s.proc->exitcode;
  return std::nullopt;
}

std::optional<int> popen::returncode() const { return const_cast<popen*>(this)->poll(); }

int popen::wait() {
  auto& s = st();
  s.require_owner();
  s.proc->wait(std::nullopt);
  return *s.proc->exitcode;
}

int popen::wait(duration timeout) {
  auto& s = st();
  s.require_owner();
  if (!s.proc->wait(deadline_after(timeout)))
    throw timeout_error("popen: wait() timed out after " + seconds_text(timeout) +
                        " (the program runs on): " + s.command);
  return *s.proc->exitcode;
}

void popen::send_signal(int sig) {
  auto& s = st();
  s.require_owner();
  if (s.proc->try_reap()) return;  // its pid may belong to another process by now
  detail::pidfd_signal(s.proc->pidfd.get(), sig);
}

void popen::terminate() { send_signal(SIGTERM); }
void popen::kill() { send_signal(SIGKILL); }

popen::writer& popen::in() {
  auto& s = st();
  if (!s.piped[0]) throw value_error("popen: stdin is not a pipe (pass .in = isola::stdio::pipe)");
  return s.in;
}

popen::reader& popen::out() {
  auto& s = st();
  if (!s.piped[1]) throw value_error("popen: stdout is not a pipe (pass .out = isola::stdio::pipe)");
  return s.out;
}

popen::reader& popen::err() {
  auto& s = st();
  if (!s.piped[2]) throw value_error("popen: stderr is not a pipe (pass .err = isola::stdio::pipe)");
  return s.err;
}

int popen::sentinel() const {
  auto& s = st();
  s.require_owner();
  return s.proc->pidfd.get();
}

waitable popen::wait_handle() const { return waitable(sentinel()); }

popen::output popen::communicate(std::string_view input) { return *communicate_until(input, nullptr); }

popen::output popen::communicate(std::string_view input, duration timeout) {
  auto deadline = deadline_after(timeout);
  auto r = communicate_until(input, &deadline);
  if (!r)
    throw timeout_error("popen: communicate() timed out after " + seconds_text(timeout) +
                        " (the program runs on; communicate() again goes on where this call "
                        "stopped): " + st().command);
  return std::move(*r);
}

std::optional<popen::output> popen::try_communicate(std::string_view input) {
  auto now = clock::now();
  return communicate_until(input, &now);
}

std::optional<popen::output> popen::communicate_until(std::string_view input,
                                                      const clock::time_point* deadline) {
  auto& s = st();
  s.require_owner();
  bool any_pipe = s.piped[0] || s.piped[1] || s.piped[2];
  if (s.communicated && any_pipe)
    throw value_error("popen: communicate() already returned this program's output, which "
                      "can be read only once: " + s.command);
  if (!input.empty()) {
    if (!s.piped[0]) throw value_error("popen: communicate(input) needs .in = isola::stdio::pipe");
    if (s.communication_started)
      throw value_error("popen: cannot send input after starting communication; call "
                        "communicate() without input to go on");
    if (s.in.closed()) throw value_error("popen: communicate(input) after stdin was closed");
  }

  bool first = !s.communication_started;
  s.communication_started = true;
  std::string_view todo = first ? input : std::string_view(s.saved_input).substr(s.saved_off);
  std::size_t off = 0;
  if (!s.in.closed() && todo.empty()) s.in.close();  // no input: the program reads EOF

  std::optional<nonblocking_scope> nb;
  if (!s.in.closed()) nb.emplace(s.in.fd_);
  for (;;) {
    pollfd fds[3];
    int who[3];
    nfds_t n = 0;
    if (!s.in.closed()) {
      fds[n] = {s.in.fd_, POLLOUT, 0};
      who[n++] = 0;
    }
    if (!s.out.closed() && !s.out.eof_) {
      fds[n] = {s.out.fd_, POLLIN, 0};
      who[n++] = 1;
    }
    if (!s.err.closed() && !s.err.eof_) {
      fds[n] = {s.err.fd_, POLLIN, 0};
      who[n++] = 2;
    }
    if (n == 0) break;
    if (poll_until(fds, n, deadline) == 0) {
      // Keep what is left of the input for the next call: the caller's
      // buffer may be gone by then.
      if (first) {
        s.saved_input.assign(todo.substr(off));
        s.saved_off = 0;
      } else {
        s.saved_off += off;
      }
      return std::nullopt;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (who[i] == 0) {
        ssize_t w = ::write(s.in.fd_, todo.data() + off, std::min<std::size_t>(todo.size() - off, 1 << 20));
        if (w > 0) {
          off += static_cast<std::size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          // EPIPE: the program stopped reading (or ended). As in Python the
          // rest of the input is dropped and its output still collected.
          if (errno != EPIPE) throw_errno("popen: write to the program's stdin");
          off = todo.size();
        }
        if (off == todo.size()) {
          nb.reset();
          s.in.close();
        }
      } else {
        (who[i] == 1 ? s.out : s.err).read_available();
      }
    }
  }
  s.saved_input.clear();
  s.saved_off = 0;

  if (!s.proc->wait(opt(deadline))) return std::nullopt;
  output o;
  if (!s.out.closed()) o.out = s.out.take_all();
  if (!s.err.closed()) o.err = s.err.take_all();
  s.out.close();
  s.err.close();
  s.communicated = true;
  return o;
}

// ---------------------------------------------------------------------------
// shlex
// ---------------------------------------------------------------------------

std::vector<std::string> shlex_split(std::string_view s, bool comments) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  auto fail = [&](const char* why) {
    throw value_error(std::string("shlex_split: ") + why + " in: " + std::string(s));
  };
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;  // a word has begun (an empty '' counts)
  auto end_word = [&] {
    if (in_word) words.push_back(std::move(word));
    word.clear();
    in_word = false;
  };
  std::size_t i = 0, n = s.size();
  while (i < n) {
    char c = s[i];
    if (blank(c)) {
      end_word();
      ++i;
    } else if (comments && c == '#') {
      end_word();
      while (i < n && s[i] != '\n') ++i;
    } else if (c == '\\') {
      if (i + 1 >= n) fail("no escaped character");
      word += s[i + 1];
      i += 2;
      in_word = true;
    } else if (c == '\'') {
      auto close = s.find('\'', i + 1);
      if (close == std::string_view::npos) fail("no closing quotation");
      word.append(s.substr(i + 1, close - i - 1));
      i = close + 1;
      in_word = true;
    } else if (c == '"') {
      ++i;
      for (;;) {
        if (i >= n) fail("no closing quotation");
        char d = s[i];
        if (d == '"') {
          ++i;
          break;
        }
        if (d == '\\') {
          if (i + 1 >= n) fail("no escaped character");
          char e = s[i + 1];
          if (e == '"' || e == '\\') {
            word += e;
            i += 2;
          } else {
            word += '\\';
            ++i;
          }
        } else {
          word += d;
          ++i;
        }
      }
      in_word = true;
    } else {
      word += c;
      ++i;
      in_word = true;
    }
  }
  end_word();
  return words;
}

std::string shlex_quote(std::string_view w) {
  if (w.empty()) return "''";
  bool safe = std::all_of(w.begin(), w.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && std::strchr("_@%+=:,./-", c) != nullptr);
  });
  if (safe) return std::string(w);
  std::string q = "'";
  for (char c : w) {
    if (c == '\'')
      q += "'\"'\"'";
    else
      q += c;
  }
  return q + "'";
}

std::string shlex_join(const std::vector<std::string>& words) {
  std::string out;
  for (auto& w : words) {
    if (!out.empty()) out += ' ';
    out += shlex_quote(w);
  }
  return out;
}

}  // namespace isola
