// Mirrors seed 004 "终止进程": terminate() ends a child at once; the child's
// exit status is then its exitcode, -N for "ended by signal N" — here -15,
// SIGTERM. After the PyMOTW example multiprocessing_terminate.py.
//
//   terminate [seconds]     how long the worker would take (default 1)
//
// The seed's table of exit codes:
//   == 0  未生成任何错误
//   >  0  进程有一个错误,并以该错误码退出
//   <  0  进程以一个-1*exitcode信号结束
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double seconds_per_step = 1.0;

void slow_worker() {
  std::cout << "Starting worker" << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds_per_step));
  std::cout << "Finished worker" << std::endl;
}

std::string show(std::optional<int> exitcode) {
  return exitcode ? std::to_string(*exitcode) : "None";
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"terminate() ends a process that would run for long"};
  app.add_option("seconds", seconds_per_step, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;
  std::cout << std::boolalpha;

  isola::process t(slow_worker);
  std::cout << "BEFORE: is_alive() = " << t.is_alive() << std::endl;
  t.start();
  std::cout << "DURING: is_alive() = " << t.is_alive() << std::endl;
  t.terminate();  // t.terminate()
  std::cout << "TERMINATED" << std::endl;
  t.join();
  std::cout << "JOINED: is_alive() = " << t.is_alive() << std::endl;
  std::cout << "t.exitcode = " << show(t.exitcode()) << std::endl;  // exitcode是属性不是方法
}
