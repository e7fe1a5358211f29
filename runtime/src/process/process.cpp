#include "isola/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <typeinfo>

#include "isola/detail/handle_transfer.hpp"
#include "process/function_registry.hpp"
#include "process/launcher.hpp"
#include "process/registry.hpp"
#include "sandbox/sandbox.hpp"

namespace isola {

using detail::g;
using detail::process_state;

namespace {

process_state& checked(const std::shared_ptr<process_state>& s) {
  if (!s) throw process_error("this process object was moved from");
  return *s;
}

void require_open(const process_state& s) {
  if (s.ph == process_state::phase::closed) throw value_error("process object is closed");
}

void require_started_child(const process_state& s, const char* what) {
  require_open(s);
  if (s.ph != process_state::phase::started)
    throw process_error(std::string("can only ") + what + " a started process");
  if (s.owner != ::getpid())
    throw process_error(std::string("can only ") + what + " a child process");
}

void flush_std_streams() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
}

}  // namespace

namespace detail {
int thread_count() noexcept {
  // Each thread is a directory under /proc/self/task: st_nlink = 2 + threads.
  // One stat() instead of parsing /proc/self/stat keeps fork start cheap.
  struct stat st {};
  if (::stat("/proc/self/task", &st) != 0) return 1;
  return static_cast<int>(st.st_nlink) - 2;
}
}  // namespace detail

process::process() : process(process_options{}) {}

process::process(process_options opts) : state_(std::make_shared<process_state>()) {
  auto& gl = g();
  auto& s = *state_;
  {
    std::lock_guard lk(gl.m);
    s.identity = gl.identity;
    s.identity.push_back(++gl.counter);
  }
  if (opts.name.empty()) {
    s.name = "process-";
    for (std::size_t i = 0; i < s.identity.size(); ++i)
      s.name += (i ? ":" : "") + std::to_string(s.identity[i]);
  } else {
    s.name = std::move(opts.name);
  }
  s.daemon = opts.daemon.value_or(current_process().daemon);
  s.method = opts.method;
  s.box = std::move(opts.sandbox);
}

process::~process() {
  if (!state_) return;
  try {
    auto& s = *state_;
    if (s.ph == process_state::phase::started && s.owner == ::getpid() && s.try_reap()) {
      auto& gl = g();
      std::lock_guard lk(gl.m);
      std::erase(gl.children, state_);
    }
  } catch (...) {}
}

process::process(process&&) noexcept = default;
process& process::operator=(process&&) noexcept = default;

void process::run() {
  if (spec_.run) target_exitcode_ = spec_.run();
}

int process::run_in_child() {
  run();
  return target_exitcode_;
}

void process::start() {
  auto& s = checked(state_);
  require_open(s);
  if (s.ph != process_state::phase::initial) throw process_error("cannot start a process twice");
  if (current_process().daemon)
    throw process_error("daemonic processes are not allowed to have children");
  auto& gl = g();
  auto method = s.method.value_or(get_start_method());
  if (method != start_method::fork && method != start_method::forkserver &&
      method != start_method::spawn)  // e.g. a number decoded from another process
    throw value_error("isola::process::start: unknown start method " +
                      std::to_string(static_cast<int>(method)));

  // Checked (and its cgroup made) here, in the parent: an unknown syscall
  // name or a privilege the machine lacks is an error of start().
  if (s.box) s.box = detail::prepare_sandbox(*s.box, &s.cgroup, &s.filter);

  detail::child_payload payload;
  detail::fd_export_scope handles;  // descriptors of handles among the arguments
  if (method != start_method::fork) {
    if (typeid(*this) != typeid(process))
      throw start_method_error(
          "a process subclass that overrides run() needs the fork start method: the child "
          "runs the object's memory, which forkserver and spawn do not copy; pass a function "
          "target instead to use " +
          std::string(to_string(method)));
    if (!spec_.empty()) {
      if (!spec_.portable)
        throw start_method_error("cannot start " + s.name + " with " +
                                 std::string(to_string(method)) + ": " + spec_.not_portable_reason);
      auto call = spec_.portable();
      payload.has_call = true;
      payload.trampoline = detail::to_code_ref(reinterpret_cast<const void*>(call.trampoline));
      if (call.target) {
        payload.has_target = true;
        payload.target = detail::to_code_ref(call.target);
      }
      payload.args = std::move(call.args);
    }
    payload.who = detail::identity_for_child(s);
    payload.functions = detail::inheritable_functions();
  }

  detail::ensure_atexit();
  {
    std::lock_guard lk(gl.m);
    detail::reap_registry_locked();
  }
  flush_std_streams();

  switch (method) {
    case start_method::fork: {
      if (!gl.warned_threads.load() && detail::thread_count() > 1 &&
          !gl.warned_threads.exchange(true)) {
        get_logger().warning("this process (pid=" + std::to_string(::getpid()) +
                             ") is multi-threaded, use of fork() may lead to deadlocks in "
                             "the child; consider the forkserver or spawn start method");
      }
      auto who = detail::identity_for_child(s);
      // Scanning the arguments encodes them: only worth it if a handle exists.
      std::vector<int> keep = spec_.handle_fds && detail::any_registered_handles()
                                  ? spec_.handle_fds()
                                  : std::vector<int>{};
      gl.m.lock();  // nobody changes the registry while we copy it
      pid_t parent = ::getpid();
      pid_t pid = ::fork();
      if (pid == 0) {
        detail::die_with_parent(parent);
        detail::forget_parent_state_after_fork(true);
        // Only the handles it was given. A subclass's run() works on the
        // object's own members (CPython's _UpperCaser owns its pipe), which
        // cannot be enumerated: its child keeps every handle, as os.fork().
        if (typeid(*this) == typeid(process)) detail::close_handles_except(keep);
        detail::child_main(who, [this] { return run_in_child(); });
      }
      int err = errno;
      gl.m.unlock();
      if (pid < 0) detail::throw_errno("fork", err);
      s.pid = pid;
      s.pidfd.reset(detail::pidfd_open(pid));
      break;
    }
    // From a thread that lives as long as the process (launcher.hpp): the
    // child's PDEATHSIG (the zygote's, for forkserver) follows that thread.
    case start_method::spawn:
      detail::run_on_launcher([&] { detail::launch_spawn(s, payload, handles.fds()); });
      break;
    case start_method::forkserver:
      detail::run_on_launcher([&] { detail::launch_forkserver(s, payload, handles.fds()); });
      break;
  }
  s.owner = ::getpid();
  s.ph = process_state::phase::started;
  // As Python's start(): the parent is done with the target and arguments.
  // Dropping them closes the parent's copies of handles moved in as
  // arguments, so that e.g. the reader sees EOF once the child closes its end.
  spec_ = {};
  std::lock_guard lk(gl.m);
  gl.children.push_back(state_);
}

void process::join() {
  auto& s = checked(state_);
  require_started_child(s, "join");
  s.wait(detail::deadline::forever());
}

bool process::join(duration t) {
  auto& s = checked(state_);
  require_started_child(s, "join");
  // Python's join(t): a timeout <= 0 polls once; one too long for the clock
  // waits for ever (it used to overflow into the past).
  return s.wait(detail::deadline::after_clamped(t));
}

bool process::is_alive() const {
  auto& s = checked(state_);
  require_open(s);
  if (s.ph != process_state::phase::started) return false;
  if (s.owner != ::getpid()) throw process_error("can only test a child process");
  return !s.try_reap();
}

void process::terminate() {
  auto& s = checked(state_);
  require_started_child(s, "terminate");
  if (!s.try_reap()) detail::pidfd_signal(s.pidfd.get(), SIGTERM);
}

void process::kill() {
  auto& s = checked(state_);
  require_started_child(s, "kill");
  if (!s.try_reap()) detail::pidfd_signal(s.pidfd.get(), SIGKILL);
}

void process::interrupt() {
  auto& s = checked(state_);
  require_started_child(s, "interrupt");
  if (!s.try_reap()) detail::pidfd_signal(s.pidfd.get(), SIGINT);
}

void process::close() {
  auto& s = checked(state_);
  if (s.ph == process_state::phase::closed) return;
  if (s.ph == process_state::phase::started) {
    if (s.owner == ::getpid() && !s.try_reap())
      throw process_error(
          "cannot close a process while it is still running; join() or terminate() it first");
    auto& gl = g();
    std::lock_guard lk(gl.m);
    std::erase(gl.children, state_);
  }
  std::lock_guard lk(s.m);
  s.pidfd.reset();
  s.status_fd.reset();
  s.ph = process_state::phase::closed;
}

std::optional<int> process::exitcode() const {
  auto& s = checked(state_);
  if (s.ph == process_state::phase::started && s.owner == ::getpid()) s.try_reap();
  std::lock_guard lk(s.m);
  return s.exitcode;
}

int process::pid() const {
  auto& s = checked(state_);
  require_open(s);
  return s.pid;
}

int process::sentinel() const {
  auto& s = checked(state_);
  require_open(s);
  if (s.ph != process_state::phase::started) throw process_error("process not started");
  return s.pidfd.get();
}

const std::string& process::name() const { return checked(state_).name; }
void process::name(std::string n) { checked(state_).name = std::move(n); }
bool process::daemon() const { return checked(state_).daemon; }
void process::daemon(bool d) {
  auto& s = checked(state_);
  require_open(s);
  if (s.ph != process_state::phase::initial) throw process_error("process has already started");
  s.daemon = d;
}

process_info current_process() {
  auto& gl = g();
  std::lock_guard lk(gl.m);
  auto info = gl.self;
  info.pid = ::getpid();
  return info;
}

std::optional<parent_info> parent_process() {
  auto& gl = g();
  std::lock_guard lk(gl.m);
  if (!gl.parent) return std::nullopt;
  if (!gl.parent_pidfd_opened) {
    gl.parent_pidfd_opened = true;
    try {
      gl.parent_pidfd.reset(detail::pidfd_open(gl.parent->pid));
    } catch (const os_error&) {  // ESRCH: it has ended already
      gl.parent_pidfd.reset();
    }
  }
  parent_info p;
  static_cast<process_info&>(p) = *gl.parent;
  p.sentinel_ = gl.parent_pidfd.get();
  return p;
}

bool parent_info::is_alive() const {
  if (sentinel_ < 0) return false;
  pollfd p{sentinel_, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

void parent_info::join() const {
  if (sentinel_ >= 0) detail::wait_readable(sentinel_, std::nullopt);
}

bool parent_info::join(duration t) const {
  if (sentinel_ < 0) return true;
  return detail::wait_readable(sentinel_, detail::deadline::after_clamped(t).until());
}

std::vector<process_info> active_children() {
  auto& gl = g();
  std::lock_guard lk(gl.m);
  detail::reap_registry_locked();
  std::vector<process_info> out;
  for (auto& c : gl.children) out.push_back({c->name, c->pid, c->daemon});
  return out;
}

unsigned cpu_count() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

}  // namespace isola

namespace isola::detail {

std::optional<std::string> sandbox_limit_of(const process& p, int code) {
  auto& s = process_state::of(p);
  if (!s.box) return std::nullopt;
  std::string cg;
  cg.swap(s.cgroup);
  const bool oom = cgroup_oom_killed_and_remove(cg);
  if (code == -SIGXCPU && s.box->cpu) return "cpu";
  if (code == -SIGXFSZ && s.box->file_size) return "file_size";
  if (code == -SIGKILL && oom) return "memory";
  return std::nullopt;
}

}  // namespace isola::detail
