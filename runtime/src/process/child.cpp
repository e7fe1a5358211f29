// The child side, common to every start method: become the new process,
// run the target, shut down like Python's _bootstrap, _exit with the code.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <typeinfo>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/launch.hpp"
#include "process/function_registry.hpp"
#include "process/registry.hpp"

namespace isola::detail {

namespace {
thread_local bool in_child_body = false;

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
  gl.identity = who.identity;
  gl.counter = 0;
  gl.shutdown_done = false;
  gl.atexit_registered = true;  // a child ends through finish_process, never exit()
  auto& log = get_logger();
  log.set_level(static_cast<log_level>(who.log_level));
  log.set_stderr_handler(who.log_handler);

  log.info("child process calling self.run()");
  int code = 0;
  in_child_body = true;
  try {
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
