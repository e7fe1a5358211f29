// Mirrors net04_sing_dance_multiprocess.py (seed 000, section 5.2 "python实现多进程"):
// a concert with two child processes, one sings and one dances, five steps
// each, side by side.
//
//   sing_dance [seconds]     seconds per step (default 1, as in the seed)
//
// Like the Python program, main() starts both processes and does not join
// them: when main() ends, `rt` waits for its non-daemon children, just as
// Python's interpreter does at exit.
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double seconds_per_step = 1.0;  // set in main() before start(): fork copies it

void rest() { std::this_thread::sleep_for(std::chrono::duration<double>(seconds_per_step)); }

void sing() {
  for (int i = 0; i < 5; ++i) {
    std::cout << "正在唱歌呢 " << i << std::endl;
    rest();  // 休息1秒
  }
}

void dance() {
  for (int i = 0; i < 5; ++i) {
    std::cout << "正在跳舞呢 " << i << std::endl;
    rest();  // 休息1秒
  }
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"singing and dancing in two processes"};
  app.add_option("seconds", seconds_per_step, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::process p1(sing);   // 创建唱歌进程
  isola::process p2(dance);  // 创建跳舞进程
  p1.start();                // 开始运行进程sing
  p2.start();                // 开始运行进程dance
}
