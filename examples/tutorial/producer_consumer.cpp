// Mirrors seed 004 "生产者-消费者模型", the Queue version. The seed's program
// hangs once the buns are eaten ("上述代码在三个包子被消费完后会卡死"): the
// consumer waits in q.get() for ever. This is the usual fix: once the
// producers are done, main() puts one end marker (Python's None) per
// consumer, and a consumer stops on it:
//
//   def consumer(q, name):
//       while True:
//           res = q.get()
//           if res is None: break          # 收到结束信号
//           time.sleep(random.randint(1, 3))
//           print("%s 吃了 %s" % (name, res))
//
//   def producer(q, name, food):
//       for i in range(3):
//           time.sleep(random.randint(1, 3))
//           res = "%s%s" % (food, i)
//           q.put(res)
//           print("%s 生产了 %s" % (name, res))
//
//   if __name__ == '__main__':
//       q = multiprocessing.Queue()
//       p1 = Process(target=producer, args=(q, 'egon1', '包子'))   # 生产者们
//       p2 = Process(target=producer, args=(q, 'egon2', '骨头'))
//       p3 = Process(target=producer, args=(q, 'egon3', '泔水'))
//       c1 = Process(target=consumer, args=(q, 'alex1'))           # 消费者们
//       c2 = Process(target=consumer, args=(q, 'alex2'))
//       p1.start(); p2.start(); p3.start(); c1.start(); c2.start()
//       p1.join(); p2.join(); p3.join()
//       q.put(None); q.put(None)           # 有几个消费者就发几个结束信号
//       print("主")
//
//   producer_consumer [seconds] [fork|forkserver|spawn]
//
// seconds per unit of the random 1..3 sleeps (default 1, as in the seed);
// the start method (default fork). The queue carries
// std::optional<std::string>; the end marker is std::nullopt. When main()
// ends, the runtime joins the consumers, which have stopped on the markers.
#include <chrono>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <isola/isola.hpp>
#include <isola/queue.hpp>

#include "example_cli.hpp"

namespace {

using item = std::optional<std::string>;

// time.sleep(random.randint(1, 3))
void nap(double seconds) {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> randint(1, 3);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds * randint(rng)));
}

void consumer(isola::queue<item> q, const std::string& name, double seconds) {
  while (true) {
    auto res = q.get();
    if (!res) break;  // 收到结束信号 None
    nap(seconds);
    std::cout << name << " 吃了 " << *res << std::endl;
  }
}

void producer(isola::queue<item> q, const std::string& name, const std::string& food,
              double seconds) {
  for (int i = 0; i < 3; ++i) {
    nap(seconds);
    std::string res = food + std::to_string(i);
    q.put(res);
    std::cout << name << " 生产了 " << res << std::endl;
  }
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"producers and consumers over a queue, one end marker per consumer"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  isola::queue<item> q;
  // 生产者们
  isola::process p1(producer, q, "egon1", "包子", seconds);
  isola::process p2(producer, q, "egon2", "骨头", seconds);
  isola::process p3(producer, q, "egon3", "泔水", seconds);
  // 消费者们
  isola::process c1(consumer, q, "alex1", seconds);
  isola::process c2(consumer, q, "alex2", seconds);

  p1.start();
  p2.start();
  p3.start();
  c1.start();
  c2.start();

  p1.join();
  p2.join();
  p3.join();
  q.put(std::nullopt);  // 有几个消费者就发几个结束信号
  q.put(std::nullopt);
  std::cout << "主" << std::endl;
}
