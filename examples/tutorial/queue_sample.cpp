// Mirrors net04_queue_sample.py (seed 000, section 5.4 "进程间通信"): a queue
// of at most three messages; full(), put with a timeout, put_nowait, qsize()
// and a get_nowait() loop:
//
//   q = Queue(3)  # 初始化一个Queue对象,最多可接收三条put消息
//   q.put("消息1")
//   q.put("消息2")
//   print(q.full())  # False
//   q.put("消息3")
//   print(q.full())  # True
//   try:
//       q.put("消息4", True, 2)
//   except:
//       print("消息列队已满,现有消息数量:%s" % q.qsize())
//   try:
//       q.put_nowait("消息4")
//   except:
//       print("消息列队已满,现有消息数量:%s" % q.qsize())
//   if not q.full():
//       q.put_nowait("消息4")
//   if not q.empty():
//       for i in range(q.qsize()):
//           print(q.get_nowait())
//
//   queue_sample [seconds]     the put's timeout (default 2, as in the seed)
//
// Python's Queue.Full is isola::queue_full; the output is the seed's:
//
//   False
//   True
//   消息列队已满,现有消息数量:3
//   消息列队已满,现有消息数量:3
//   消息1
//   消息2
//   消息3
#include <chrono>
#include <iostream>
#include <string>

#include "example_cli.hpp"
#include <isola/isola.hpp>
#include <isola/queue.hpp>

namespace {

std::string py(bool b) { return b ? "True" : "False"; }

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 2.0;
  isola_example::command_line app{"a bounded queue: full(), empty(), put and get with timeouts"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::queue<std::string> q(3);  // 初始化一个Queue对象,最多可接收三条put消息
  q.put("消息1");
  q.put("消息2");
  std::cout << py(q.full()) << std::endl;  // False
  q.put("消息3");
  std::cout << py(q.full()) << std::endl;  // True

  // 因为消息列队已满,所以下面的try都会抛出异常,第一个try会等待2秒后再抛出异常,第二个Try会立刻抛出异常
  try {
    q.put("消息4", std::chrono::duration<double>(seconds));
  } catch (const isola::queue_full&) {
    std::cout << "消息列队已满,现有消息数量:" << q.qsize() << std::endl;
  }

  try {
    q.put_nowait("消息4");
  } catch (const isola::queue_full&) {
    std::cout << "消息列队已满,现有消息数量:" << q.qsize() << std::endl;
  }

  // 推荐的方式,先判断消息列队是否已满,再写入
  if (!q.full()) q.put_nowait("消息4");

  // 读取消息时,先判断消息列队是否为空,再读取
  if (!q.empty()) {
    for (std::size_t i = 0, n = q.qsize(); i < n; ++i) std::cout << q.get_nowait() << std::endl;
  }
}
