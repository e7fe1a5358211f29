// Mirrors net04_getpid.py (seed 000, section 5.2): the program runs as three
// processes, the parent and two children, each with its own pid.
//
//   getpid [seconds]     seconds per step (default 1, as in the seed)
//
// The seed prints the pids so that a reader can compare them with `ps aux`.
// This twin also joins the children and prints p1.pid() and p2.pid() as the
// parent sees them, so its ctest can check that each child printed the pid
// its handle reports and that no child's pid is the parent's.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double seconds_per_step = 1.0;

void rest() { std::this_thread::sleep_for(std::chrono::duration<double>(seconds_per_step)); }

void sing() {
  std::cout << "唱歌进程pid: " << ::getpid() << std::endl;
  for (int i = 0; i < 5; ++i) {
    std::cout << "正在唱歌呢 " << i << std::endl;
    rest();  // 休息1秒
  }
}

void dance() {
  std::cout << "跳舞进程pid: " << ::getpid() << std::endl;
  for (int i = 0; i < 5; ++i) {
    std::cout << "正在跳舞呢 " << i << std::endl;
    rest();  // 休息1秒
  }
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"three processes, three pids"};
  app.add_option("seconds", seconds_per_step, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  std::cout << "父进程pid: " << ::getpid() << std::endl;
  isola::process p1(sing);   // 创建唱歌进程
  isola::process p2(dance);  // 创建跳舞进程
  p1.start();                // 开始运行进程sing
  p2.start();                // 开始运行进程dance

  p1.join();
  p2.join();
  std::cout << "p1.pid(): " << p1.pid() << std::endl;
  std::cout << "p2.pid(): " << p2.pid() << std::endl;
}
