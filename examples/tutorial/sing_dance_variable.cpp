// Mirrors net04_sing_dance_variable.py (seed 000, section 5.2): the director
// tells the children who sings what (positional args) and who dances
// (Python's kwargs={'dancer': '杰克逊'}, here a small serializable struct).
//
//   sing_dance_variable [seconds] [fork|forkserver|spawn]
//
// seconds per step (default 1, as in the seed); the start method (default
// fork). Under forkserver and spawn the child is not a copy of this process,
// so everything it needs travels as arguments: the target is a plain
// function and every argument is cereal-serializable. That is also why the
// step length is an argument here rather than a global.
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include <isola/isola.hpp>

#include "example_cli.hpp"

namespace {

// kwargs={'dancer': '杰克逊'}
struct dance_kwargs {
  std::string dancer;
  template <class A>
  void serialize(A& a) {
    a(dancer);
  }
};

void rest(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

void sing(const std::string& name, const std::string& sing_name, double seconds) {
  for (int i = 0; i < 5; ++i) {
    std::cout << name << " 正在唱歌" << sing_name << "呢 " << i << std::endl;
    rest(seconds);  // 休息1秒
  }
}

void dance(const dance_kwargs& kwargs, double seconds) {
  const std::string& dancer = kwargs.dancer;
  for (int i = 0; i < 5; ++i) {
    std::cout << dancer << "正在伴舞呢 " << i << std::endl;
    rest(seconds);  // 休息1秒
  }
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"arguments reach the children under every start method"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  std::string singer = "Jam";
  std::string sing_name = "不露声色";
  // 创建唱歌进程,告诉子进程是Jam唱不露声色
  isola::process p1(sing, singer, sing_name, seconds);
  // 创建跳舞进程,告诉子进程是杰克逊来唱歌啦
  isola::process p2(dance, dance_kwargs{.dancer = "杰克逊"}, seconds);
  p1.start();  // 开始运行进程sing
  p2.start();  // 开始运行进程dance
}
