// The child side, common to every start method: become the new process,
// run the target, shut down like Python's _bootstrap, _exit with the code.
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <typeinfo>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/launch.hpp"
#include "process/function_registry.hpp"
#include "process/registry.hpp"
#include "sandbox/sandbox.hpp"

namespace isola::detail {

namespace {
thread_local bool in_child_body = false;
pid_t main_tid = 0;

// Whether the interrupted instruction is a system call: RIP sits on the
// `syscall` instruction (a call the kernel will restart) or right after it
// (one that returns EINTR). Only there is a throw as safe as a glibc
// cancellation point: the unwinder leaves through the libc wrapper into a
// call site of the caller, whose destructors and handlers then run.
bool interrupted_in_syscall(void* uc) noexcept {
#if defined(__x86_64__)
  const auto* ctx = static_cast<const ucontext_t*>(uc);
  const auto* ip = reinterpret_cast<const unsigned char*>(ctx->uc_mcontext.gregs[REG_RIP]);
  return (ip[0] == 0x0f && ip[1] == 0x05) || (ip[-2] == 0x0f && ip[-1] == 0x05);
#else
  (void)uc;
  return false;
#endif
}

// SIGINT in an isola::process child (Python: KeyboardInterrupt). Where a
// throw is safe, the target unwinds with keyboard_interrupt; anywhere else
// the signal does what it does by default (the child ends with -SIGINT).
void on_sigint(int, siginfo_t*, void* uc) {
  const int saved = errno;
  if (::syscall(SYS_gettid) != main_tid) {
    // Another thread got it: the target runs on the main thread.
    ::syscall(SYS_tgkill, ::getpid(), main_tid, SIGINT);
    errno = saved;
    return;
  }
  if (in_child_body && interrupted_in_syscall(uc)) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    ::sigprocmask(SIG_UNBLOCK, &s, nullptr);  // we leave without sigreturn
    throw keyboard_interrupt("keyboard interrupt (SIGINT)");
  }
  ::signal(SIGINT, SIG_DFL);
  ::raise(SIGINT);  // delivered once this handler returns
  errno = saved;
}

// A child whose SIGINT is at its default gets the handler above; one that
// inherited it ignored keeps ignoring it.
void install_sigint_handler() noexcept {
  struct sigaction old {};
  if (::sigaction(SIGINT, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) return;
  main_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  struct sigaction sa {};
  sa.sa_sigaction = &on_sigint;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

void flush_std_streams() noexcept {
  // cerr is unit-buffered and clog, like cout, is synced with stdio unless
  // the program said otherwise; cout is the one stream worth a flush.
  try {
    std::cout.flush();
  } catch (...) {}
  std::fflush(nullptr);
}

void write_stderr(const std::string& s) noexcept {
  try {
    write_full(2, s.data(), s.size());
  } catch (...) {}
}
}  // namespace

[[noreturn]] void finish_process(int code) {
  auto& gl = g();
  if (!gl.parent) {
    flush_std_streams();
    std::exit(code);  // the root: atexit runs shutdown_children
  }
  shutdown_children();
  if (get_logger().enabled_for(log_level::info))
    get_logger().info("process exiting with exitcode " + std::to_string(code));
  flush_std_streams();
  ::_exit(code);
}

[[noreturn]] void child_main(const child_identity& who, const std::function<int()>& body) {
  // Every child starts with default dispositions for the signals anyone
  // caught — the parent's (fork) or a sanitizer's or framework's own (spawn) —
  // so that a crash is a death by signal, reported as -N, under every method.
  reset_signals_as_exec_would();
  auto& gl = g();
  gl.self = process_info{who.name, ::getpid(), who.daemon};
  gl.parent = process_info{who.parent_name, who.parent_pid, false};
  gl.parent_pidfd_opened = false;  // on the first parent_process()
  gl.identity = who.identity;
  gl.default_method.store(who.method);
  gl.counter = 0;
  gl.shutdown_done = false;
  gl.atexit_registered = true;  // a child ends through finish_process, never exit()
  auto& log = get_logger();
  log.set_level(static_cast<log_level>(who.log_level));
  log.set_stderr_handler(who.log_handler);

  install_sigint_handler();
  log.info("child process calling self.run()");
  int code = 0;
  in_child_body = true;
  try {
    if (who.box) apply_sandbox(*who.box, who.cgroup, who.filter);
    code = body();
  } catch (const std::exception& e) {
    flush_std_streams();
    write_stderr(who.name + ": " + e.what() + "\n");
    code = 1;
  } catch (...) {
    flush_std_streams();
    write_stderr(who.name + ": unknown exception\n");
    code = 1;
  }
  in_child_body = false;
  finish_process(code);
}

[[noreturn]] void run_payload_child(const child_payload& p, std::vector<int> fds) {
  child_main(p.who, [&p, &fds]() -> int {
    fd_import_scope handles(std::move(fds));  // the arguments' handles resolve here
    // The parent's registrations first: the target may be one of them. The
    // trampoline checks the target's registration against its own type.
    adopt_inherited_functions(p.functions);
    if (!p.has_call) return 0;
    auto tr = reinterpret_cast<trampoline_fn>(const_cast<void*>(require_registered(
        resolve(p.trampoline), fn_type_of<trampoline_fn>(), "a process's start request")));
    const void* target = p.has_target ? resolve(p.target) : nullptr;
    return tr(target, p.args);
  });
}

}  // namespace isola::detail

namespace isola {

void exit(int code) { detail::finish_process(code); }

}  // namespace isola
