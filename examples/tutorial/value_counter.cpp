// Mirrors seed 003's shared variable (multiprocessing.Value): a plain dict
// copied into three processes is not shared, a Value is.
//
//   >>> def fun1(configs):
//   ...     configs['num'] += 1
//   ...     print(configs)
//   >>> configs = {'num': 0}
//   >>> for _ in range(3):
//   ...     multiprocessing.Process(target=fun1, args=(configs,)).start()
//   {'num': 1}  # 可见,各个进程的 num 没有累加
//   {'num': 1}
//   {'num': 1}
//
//   >>> def fun1(num):
//   ...     num.value += 1
//   ...     print(num.value)
//   >>> num = multiprocessing.Value('i', 0)
//   >>> for _ in range(3):
//   ...     multiprocessing.Process(target=fun1, args=(num,)).start()
//   1
//   2
//   3
//
// "num.value += 1" reads, adds and writes: another process may write in
// between, so the seed advises `with num.get_lock(): num.value += 1`.
//
//   value_counter [lock|nolock|atomic] [fork|forkserver|spawn] [increments]
//
// lock (default): each process increments under num.get_lock() and prints
// the value it made: 1, 2 and 3, each once, and the total is exact. nolock:
// the seed's first version; increments may be lost (the more increments per
// process, the likelier), so the total is at most 3 * increments. atomic:
// num.fetch_add(1), lock-free and exact (beyond Python).
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/start_method.hpp>
#include <isola/value.hpp>

#include "example_cli.hpp"

namespace {

// configs = {'num': 0}: a plain value, copied into each child.
struct configs_t {
  int num = 0;
  template <class A>
  void serialize(A& a) {
    a(num);
  }
};

void fun1_dict(configs_t configs) {
  configs.num += 1;
  std::cout << "{'num': " << configs.num << "}" << std::endl;
}

void fun1_locked(isola::value<int> num, int increments) {
  int made = 0;
  for (int i = 0; i < increments; ++i) {
    std::scoped_lock g(num.get_lock());  // with num.get_lock():
    num.store(num.load() + 1);           //     num.value += 1
    made = num.load();
  }
  if (increments == 1) std::cout << made << std::endl;
}

void fun1_unlocked(isola::value<int> num, int increments) {
  for (int i = 0; i < increments; ++i) {
    int v = num.load();  // read ...
    std::this_thread::yield();
    num.store(v + 1);  // ... write: another process may have written in between
  }
  if (increments == 1) std::cout << "一个进程加完了" << std::endl;
}

void fun1_atomic(isola::value<int> num, int increments) {
  for (int i = 0; i < increments; ++i) num.fetch_add(1);
  if (increments == 1) std::cout << "一个进程加完了" << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::string mode = "lock";
  int increments = 1;
  isola_example::command_line app{"a shared value counted by three processes, with and without its lock"};
  app.add_choice("mode", mode, {"lock", "nolock", "atomic"}, "lock, nolock or atomic");
  isola_example::add_start_method(app);
  app.add_option("increments", increments, "increments per process");
  if (auto status = app.parse(argc, argv)) return *status;

  // Not shared: each child changes its own copy.
  configs_t configs;
  for (int i = 0; i < 3; ++i) {
    isola::process p(fun1_dict, configs);
    p.start();
    p.join();
  }
  std::cout << "主进程 configs = {'num': " << configs.num << "}" << std::endl;

  // Shared: num = multiprocessing.Value('i', 0)
  isola::value<int> num(0);
  void (*fun1)(isola::value<int>, int) = mode == "lock"     ? fun1_locked
                                         : mode == "nolock" ? fun1_unlocked
                                                            : fun1_atomic;
  isola::process ps[3] = {isola::process(fun1, num, increments),
                          isola::process(fun1, num, increments),
                          isola::process(fun1, num, increments)};
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  std::cout << "num.value = " << num.load() << " (" << 3 * increments << " 次加一)" << std::endl;
}
