// popen: an external program as a child process (Python's subprocess.Popen),
// the handle: its state, the writer and reader on the program's pipes, the
// constructor, and the methods that poll, wait for or signal the program.
// The child's side (vfork, exec, the error pipe) is in exec_child.cpp,
// communicate() in communicate.cpp, shlex in shlex.cpp.
//
// Reaping. The exit status comes through a pidfd (detail::process_state, the
// same code isola's processes use), so wait(t) sleeps in poll() on it. A
// popen destroyed while its program runs hands its process_state to a reaper
// thread that exists only while such programs run.
//
// What other processes see: only the process that started the program can
// wait for it or use its pipes (process_error elsewhere); a child forked
// from that process holds none of its pipe ends or pidfds (closed at fork),
// so the program reads EOF on stdin once its parent closes it; the program
// is reaped even when its popen is destroyed first, so no zombie outlives it.
#include "isola/popen.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
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
#include "popen/popen_internal.hpp"
#include "process/registry.hpp"
#include "sys/os.hpp"

namespace isola {

using namespace popen_internal;
using detail::throw_errno;
using detail::unique_fd;

namespace popen_internal {

/// Python's timeouts here: one <= 0 is a single try; one beyond the clock
/// waits for ever.
detail::deadline deadline_after(duration t) { return detail::deadline::after_clamped(t); }

std::string seconds_text(duration t) {
  std::ostringstream os;
  os << t.count() << " s";
  return os.str();
}

/// poll() until something is ready or the deadline passes (0).
int poll_until(pollfd* fds, nfds_t n, const detail::deadline& d) {
  using namespace std::chrono;
  const auto deadline = d.until();
  for (;;) {
    int ms = -1;
    if (deadline) {
      const auto now = clock::now();
      ms = 0;
      if (*deadline > now)
        ms = static_cast<int>(std::min<long long>(
            duration_cast<milliseconds>(*deadline - now + 999us).count(), 1 << 30));
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

}  // namespace popen_internal

namespace {

const char* stream_name(int i) { return i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr"; }

}  // namespace

// ---------------------------------------------------------------------------
// State, registry, reaper
// ---------------------------------------------------------------------------

popen::state::registry& popen::state::reg() {
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
void popen::state::after_fork_in_child() {
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

void popen::state::enroll() {
  auto& r = reg();
  std::lock_guard lk(r.m);
  r.live.push_back(this);
}

void popen::state::withdraw() noexcept {
  auto& r = reg();
  std::lock_guard lk(r.m);
  std::erase(r.live, this);
}

void popen::state::reaper_loop() {
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

void popen::state::abandon(std::shared_ptr<detail::process_state> p) noexcept {
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

void popen::state::reap_abandoned() noexcept {
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

void popen::state::release() noexcept {
  withdraw();
  in.close();
  out.close();
  err.close();
  try {
    if (proc && proc->owner == ::getpid() && proc->pidfd && !proc->try_reap())
      abandon(std::move(proc));
  } catch (...) {}
}

// ---------------------------------------------------------------------------
// writer, reader
// ---------------------------------------------------------------------------

void popen::writer::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::size_t popen::writer::write_until(std::string_view data, const detail::deadline& d) {
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
    if (poll_until(&p, 1, d) == 0) break;
  }
  return off;
}

void popen::writer::write(std::string_view data) { write_until(data, detail::deadline::forever()); }

void popen::writer::write(std::string_view data, duration timeout) {
  auto deadline = deadline_after(timeout);
  if (write_until(data, deadline) < data.size())
    throw timeout_error("popen: writing to the program's stdin timed out after " +
                        seconds_text(timeout));
}

std::size_t popen::writer::try_write(std::string_view data) {
  return write_until(data, detail::deadline::now());
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

bool popen::reader::fill(const detail::deadline& d) {
  if (fd_ < 0) throw value_error("popen: read from a closed pipe");
  if (eof_) return true;
  if (!detail::wait_readable(fd_, d.until())) return false;
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
  while (!eof_) fill(detail::deadline::forever());
  return take_all();
}

std::string popen::reader::read(duration timeout) {
  auto deadline = deadline_after(timeout);
  while (!eof_)
    if (!fill(deadline))
      throw timeout_error("popen: no end of output within " + seconds_text(timeout));
  return take_all();
}

std::string popen::reader::try_read() {
  if (!eof_)
    fill(detail::deadline::now());  // one read: a fast writer must not keep this call going
  return take_all();
}

std::optional<std::string> popen::reader::read_line() {
  for (;;) {
    if (auto l = take_line(true)) return l;
    if (eof_) return std::nullopt;
    fill(detail::deadline::forever());
  }
}

std::optional<std::string> popen::reader::read_line(duration timeout) {
  auto deadline = deadline_after(timeout);
  for (;;) {
    if (auto l = take_line(true)) return l;
    if (eof_) return std::nullopt;
    if (!fill(deadline)) throw timeout_error("popen: no line within " + seconds_text(timeout));
  }
}

std::optional<std::string> popen::reader::try_read_line() {
  for (;;) {
    if (auto l = take_line(true)) return l;
    if (eof_) return std::nullopt;
    if (!fill(detail::deadline::now())) return std::nullopt;
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

void popen::state::open_streams(const popen_options& opts, child_plan& plan,
                                unique_fd (&child_side)[3]) {
  const stdio* want[3] = {&opts.in, &opts.out, &opts.err};
  for (int i = 0; i < 3; ++i) {
    switch (want[i]->how()) {
      case stdio::kind::inherit: break;
      case stdio::kind::pipe: {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("popen: pipe2");
        unique_fd r(p[0]), w(p[1]);
        r.reset(above_stdio(r.release()));
        w.reset(above_stdio(w.release()));
        if (i == 0) {
          detail::ignore_sigpipe();  // a write to a program that quit is EPIPE, not our death
          child_side[i] = std::move(r);
          in.fd_ = w.release();
        } else {
          child_side[i] = std::move(w);
          (i == 1 ? out : err).fd_ = r.release();
        }
        piped[i] = true;
        break;
      }
      case stdio::kind::devnull: {
        int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) throw_errno("popen: open /dev/null");
        child_side[i].reset(above_stdio(fd));
        break;
      }
      case stdio::kind::to_stdout:
        if (i != 2)
          throw value_error(std::string("popen: stdio::to_stdout is for stderr, not ") +
                            stream_name(i));
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
}

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
    if (fd < 3)
      throw value_error("popen: pass_fds cannot hold " + std::to_string(fd) +
                        "; set .in, .out or .err for the standard streams");
    if (::fcntl(fd, F_GETFD) < 0) throw_errno("popen: pass_fds holds " + std::to_string(fd));
  }

  child_plan plan;
  unique_fd child_side[3];
  s.open_streams(opts, plan, child_side);

  error_pipe ep = open_error_pipe();

  plan.argv = argv_c.data();
  plan.envp = envp_c.data();
  plan.candidates = cand_c.data();
  plan.cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();
  plan.pass = opts.pass_fds.data();
  plan.npass = opts.pass_fds.size();
  plan.new_session = opts.start_new_session;
  plan.die_with_parent = opts.die_with_parent;
  plan.parent = ::getpid();
  plan.errfd = ep.write_end.get();

  pid_t pid = start_child(plan);
  ep.write_end.reset();
  for (auto& c : child_side) c.reset();
  check_exec(pid, ep.read_end.get(), program, opts.cwd, env);

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
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
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
  s.proc->wait(detail::deadline::forever());
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
  if (!s.piped[1])
    throw value_error("popen: stdout is not a pipe (pass .out = isola::stdio::pipe)");
  return s.out;
}

popen::reader& popen::err() {
  auto& s = st();
  if (!s.piped[2])
    throw value_error("popen: stderr is not a pipe (pass .err = isola::stdio::pipe)");
  return s.err;
}

int popen::sentinel() const {
  auto& s = st();
  s.require_owner();
  return s.proc->pidfd.get();
}

waitable popen::wait_handle() const { return waitable(sentinel()); }

}  // namespace isola
