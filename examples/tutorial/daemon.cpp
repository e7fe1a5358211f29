// Mirrors seed 004 "守护进程" (t.daemon = True), written as the example of
// Python's documentation of it (PyMOTW multiprocessing_daemon.py): a daemon
// process is terminated when the main program ends, so its "Exiting" line
// never comes; a non-daemon process is waited for.
//
//   daemon [seconds] [daemon_seconds]
//
// main() waits `seconds` (default 1) between starting the daemon and the
// non-daemon; the daemon sleeps `daemon_seconds` (default 2) before its
// "Exiting" line. Python's example uses 1 and 2.
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double seconds_per_step = 1.0;
double daemon_seconds = 2.0;

void daemon_task() {
  auto p = isola::current_process();
  std::cout << "Starting: " << p.name << ' ' << p.pid << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(daemon_seconds));
  std::cout << "Exiting : " << p.name << ' ' << p.pid << std::endl;
}

void non_daemon_task() {
  auto p = isola::current_process();
  std::cout << "Starting: " << p.name << ' ' << p.pid << std::endl;
  std::cout << "Exiting : " << p.name << ' ' << p.pid << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"a daemon process is terminated when main() ends; a non-daemon one is waited for"};
  app.add_option("seconds", seconds_per_step, "seconds a step sleeps");
  app.add_option("daemon_seconds", daemon_seconds,
                 "seconds the daemon sleeps before its last line");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::process d(isola::process_options{.name = "daemon"}, daemon_task);
  d.daemon(true);  // t.daemon = True
  isola::process n(isola::process_options{.name = "non-daemon", .daemon = false}, non_daemon_task);

  d.start();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds_per_step));
  n.start();
  // main() ends here: `rt` terminates the daemon and joins the non-daemon.
}
