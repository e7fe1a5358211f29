// Mirrors net04_global_variables.py (seed 000, section 5.3 "进程间不共享全局变量"):
// processes do not share globals. Each child gets its own copy of global_num
// and counts it up to 5; the parent's stays 0.
//
//   global_variables [seconds]     seconds per step (default 1, as in the seed)
//
// Python's print() puts a space between its arguments, hence the two spaces
// after "global_num=".
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

int global_num = 0;
double seconds_per_step = 1.0;

void rest() { std::this_thread::sleep_for(std::chrono::duration<double>(seconds_per_step)); }

void sing() {
  std::cout << "开始:全局变量sing global_num=  " << global_num << std::endl;
  for (int i = 0; i < 5; ++i) {
    std::cout << "正在唱歌呢 " << i << std::endl;
    global_num = global_num + 1;  // 修改全局变量
    rest();                       // 休息1秒
  }
  std::cout << "结束:全局变量sing global_num=  " << global_num << std::endl;
}

void dance() {
  std::cout << "开始:全局变量dance global_num=  " << global_num << std::endl;
  for (int i = 0; i < 5; ++i) {
    std::cout << "正在跳舞呢 " << i << std::endl;
    global_num = global_num + 1;  // 修改全局变量
    rest();                       // 休息1秒
  }
  std::cout << "结束:全局变量dance global_num=  " << global_num << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"each child counts its own copy of a global"};
  app.add_option("seconds", seconds_per_step, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  std::cout << "开始:全局变量main global_num=  " << global_num << std::endl;
  isola::process p1(sing);   // 创建唱歌进程
  isola::process p2(dance);  // 创建跳舞进程
  p1.start();
  p2.start();
  p1.join();  // 待子进程p1执行完毕后再执行下面的语句
  p2.join();  // 待子进程p2执行完毕后再执行下面的语句
  std::cout << "结束:全局变量main global_num=  " << global_num << std::endl;
}
