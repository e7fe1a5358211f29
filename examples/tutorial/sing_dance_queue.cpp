// Mirrors net04_sing_dance_queue.py (seed 000, section 5.4 "进程间通信"): while
// they perform, 杰克逊 the dancer hands Jam the singer a flower through a
// queue:
//
//   def sing(name, sing_name):
//       for i in range(5):
//           print(name, '正在唱歌%s呢 %d' % (sing_name, i))
//           time.sleep(1)  # 休息1秒
//       while True:
//           if not q.empty():
//               value = q.get() # 从队列中读取数据
//               print('Jam收到了', value)
//           else:
//               break
//
//   def dance(**kwargs):
//       dancer = kwargs['dancer']
//       q.put('花') # 向队列中写入花数据
//       print('杰克逊向Jam递了一朵花')
//       for i in range(5):
//           print('%s正在伴舞呢 %d' % (dancer, i))
//           time.sleep(1)  # 休息1秒
//
//   sing_dance_queue [seconds] [fork|forkserver|spawn]
//
// seconds per step (default 1, as in the seed); the start method (default
// fork). The seed's processes reach q as a global, which only a forked child
// sees; here the queue is a process argument of both, which works under
// every start method (a copy of a queue is the same queue).
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include <isola/isola.hpp>
#include <isola/queue.hpp>

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

void sing(const std::string& name, const std::string& sing_name, isola::queue<std::string> q,
          double seconds) {
  for (int i = 0; i < 5; ++i) {
    std::cout << name << " 正在唱歌" << sing_name << "呢 " << i << std::endl;
    rest(seconds);  // 休息1秒
  }
  while (true) {
    if (!q.empty()) {
      auto value = q.get();  // 从队列中读取数据
      std::cout << "Jam收到了 " << value << std::endl;
    } else {
      break;
    }
  }
}

void dance(const dance_kwargs& kwargs, isola::queue<std::string> q, double seconds) {
  const std::string& dancer = kwargs.dancer;
  q.put("花");  // 向队列中写入花数据
  std::cout << "杰克逊向Jam递了一朵花" << std::endl;
  for (int i = 0; i < 5; ++i) {
    std::cout << dancer << "正在伴舞呢 " << i << std::endl;
    rest(seconds);  // 休息1秒
  }
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"singing and dancing processes talking over a queue"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  std::string singer = "Jam";
  std::string sing_name = "不露声色";
  isola::queue<std::string> q;                                             // 创建队列
  isola::process p1(sing, singer, sing_name, q, seconds);                  // 创建唱歌进程
  isola::process p2(dance, dance_kwargs{.dancer = "杰克逊"}, q, seconds);  // 创建跳舞进程
  p1.start();                                                              // 开始运行进程sing
  p2.start();  // 开始运行进程dance
}
