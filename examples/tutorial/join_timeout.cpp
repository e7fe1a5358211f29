// Mirrors seed 004 "守护进程" on join: join() blocks until the process ends;
// join(timeout) stops blocking after the timeout even if it has not ended
// (and returns false then, where Python returns None and one asks
// is_alive()). After the PyMOTW example multiprocessing_daemon_join_timeout.py.
//
//   join_timeout [seconds]     the timeout (default 1); the child runs twice as long
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double seconds_per_step = 1.0;

void slow() {
  auto name = isola::current_process().name;
  std::cout << "Starting: " << name << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(2 * seconds_per_step));
  std::cout << "Exiting : " << name << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"join(timeout) returns while the process still runs"};
  app.add_option("seconds", seconds_per_step, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;
  std::cout << std::boolalpha;

  isola::process t(isola::process_options{.name = "slow"}, slow);
  t.start();

  bool ended = t.join(isola::duration(seconds_per_step));  // t.join(sec)
  std::cout << "t.join(" << seconds_per_step << ") = " << ended << std::endl;
  std::cout << "t.is_alive() = " << t.is_alive() << std::endl;

  t.join();  // 默认地join()会无限阻塞
  std::cout << "t.join() returned" << std::endl;
  std::cout << "t.is_alive() = " << t.is_alive() << std::endl;
}
