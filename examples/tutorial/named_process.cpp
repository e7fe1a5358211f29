// Mirrors seed 004 "确定当前的进程": a process's name, either the default
// ("process-N", Python's "Process-N") read with
// isola::current_process().name, or one given when it is made (name="t1").
//
//   named_process [seconds]     seconds per step (default 1)
//
// As in Python, every process made counts toward N, named or not: the third
// process here is "process-3".
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double seconds_per_step = 1.0;

void work() {
  std::string name = isola::current_process().name;
  std::cout << name << " Starting" << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(2 * seconds_per_step));
  std::cout << name << " Exiting" << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"process names: MainProcess, process-N, or the name given"};
  app.add_option("seconds", seconds_per_step, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  std::cout << "main: " << isola::current_process().name << std::endl;

  isola::process worker_1(work);                                 // 默认的name
  isola::process t(isola::process_options{.name = "t1"}, work);  // 实例化时传入name参数
  isola::process worker_2(work);                                 // 默认的name
  std::cout << "worker_1.name() = " << worker_1.name() << std::endl;
  std::cout << "t.name() = " << t.name() << std::endl;
  std::cout << "worker_2.name() = " << worker_2.name() << std::endl;

  worker_1.start();
  t.start();
  worker_2.start();
  worker_1.join();
  t.join();
  worker_2.join();
}
