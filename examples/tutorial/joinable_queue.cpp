// Mirrors seed 004 "生产者-消费者模型", the JoinableQueue version: consumers
// call q.task_done() for each item; producers q.join() until everything they
// put has been eaten; main() joins the producers, and the consumers, daemon
// processes blocked in q.get(), are terminated when main() ends:
//
//   def consumer(q,name):
//       while True:
//           res=q.get()
//           time.sleep(random.randint(1,3))
//           print('%s 吃 %s' %(name,res))
//           q.task_done() #发送信号给q.join(),说明已经从队列中取走一个数据并处理完毕了
//   def producer(q,name,food):
//       for i in range(3):
//           time.sleep(random.randint(1,3))
//           res='%s%s' %(food,i)
//           q.put(res)
//           print('%s 生产了 %s' %(name,res))
//       q.join() #等到消费者把自己放入队列中的所有的数据都取走之后,生产者才结束
//   if __name__ == '__main__':
//       q=JoinableQueue() #使用JoinableQueue()
//       p1=Process(target=producer,args=(q,'egon1','包子'))    #生产者们
//       p2=Process(target=producer,args=(q,'egon2','骨头'))
//       p3=Process(target=producer,args=(q,'egon3','泔水'))
//       c1=Process(target=consumer,args=(q,'alex1'))          #消费者们
//       c2=Process(target=consumer,args=(q,'alex2'))
//       c1.daemon=True
//       c2.daemon=True
//       p1.start(); p2.start(); p3.start(); c1.start(); c2.start()
//       p1.join(); p2.join(); p3.join()
//       print('主process')
//
//   joinable_queue [seconds] [fork|forkserver|spawn]
//
// seconds per unit of the random 1..3 sleeps (default 1, as in the seed);
// the start method (default fork).
#include <chrono>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <isola/isola.hpp>
#include <isola/joinable_queue.hpp>

#include "example_cli.hpp"

namespace {

// time.sleep(random.randint(1, 3))
void nap(double seconds) {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> randint(1, 3);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds * randint(rng)));
}

void consumer(isola::joinable_queue<std::string> q, const std::string& name, double seconds) {
  while (true) {
    auto res = q.get();
    nap(seconds);
    std::cout << name << " 吃 " << res << std::endl;
    q.task_done();  // 发送信号给q.join(),说明已经从队列中取走一个数据并处理完毕了
  }
}

void producer(isola::joinable_queue<std::string> q, const std::string& name,
              const std::string& food, double seconds) {
  for (int i = 0; i < 3; ++i) {
    nap(seconds);
    std::string res = food + std::to_string(i);
    q.put(res);
    std::cout << name << " 生产了 " << res << std::endl;
  }
  q.join();  // 等到消费者把自己放入队列中的所有的数据都取走之后,生产者才结束
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"producers wait with join() until consumers have eaten every dish"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  isola::joinable_queue<std::string> q;  // 使用JoinableQueue()

  // 生产者们
  isola::process p1(producer, q, "egon1", "包子", seconds);
  isola::process p2(producer, q, "egon2", "骨头", seconds);
  isola::process p3(producer, q, "egon3", "泔水", seconds);

  // 消费者们
  isola::process c1(consumer, q, "alex1", seconds);
  isola::process c2(consumer, q, "alex2", seconds);
  c1.daemon(true);
  c2.daemon(true);

  // 开始
  p1.start();
  p2.start();
  p3.start();
  c1.start();
  c2.start();

  p1.join();
  p2.join();
  p3.join();
  // 1、主进程等生产者p1、p2、p3结束
  // 2、而p1、p2、p3是在消费者把所有数据都取干净之后才会结束
  // 3、所以一旦p1、p2、p3结束了,证明消费者也没必要存在了,应该随着主进程一块死掉,因而需要将消费者们设置成守护进程
  std::cout << "主process" << std::endl;
  // main() ends here: `rt` terminates the daemon consumers, blocked in q.get().
}
