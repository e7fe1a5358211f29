// Mirrors seed 002 "数据共享 / Manager模块": 100 processes each take one from
// dict['count'] (100 at the start) under a lock; the dict ends at 0. Here the
// dict and the lock both live in a manager process, as Python's m.dict() does
// (the seed uses a multiprocessing.Lock; a managed lock works the same):
//
//   def work(d, lock):
//       with lock:                     # 不加锁而操作共享的数据,肯定会出现数据错乱
//           d['count'] -= 1
//
//   if __name__ == '__main__':
//       with Manager() as m:
//           lock = m.Lock()
//           dic = m.dict({'count': 100})
//           p_l = []
//           for i in range(100):
//               p = Process(target=work, args=(dic, lock))
//               p_l.append(p)
//               p.start()
//           for p in p_l:
//               p.join()
//           print(dic)
//
//   manager_dict_counter [fork|forkserver|spawn]
//
// The get and the set are two requests: without the lock two processes could
// read the same count. Leaving main() shuts the manager down (the with-block).
// The same without any lock: d.update("count", decrement) runs the decrement
// in the manager, atomically; the program prints that second count too.
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <isola/isola.hpp>

#include "example_cli.hpp"

namespace {

using shared_dict = isola::managed::dict<std::string, int>;

void work(shared_dict d, isola::managed::lock lock) {
  std::scoped_lock g(lock);
  d.set("count", d.get("count") - 1);
}

int decrement(int v) { return v - 1; }
// update() runs it in the manager process, which runs only functions the
// program registered at start-up (a client names one; it sends no code).
ISOLA_REGISTER_FUNCTION(decrement);

void work_atomically(shared_dict d) { d.update("count", &decrement); }

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"100 processes decrement a manager's dict under a manager lock"};
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  isola::manager m;
  auto lock = m.lock();
  auto dic = m.dict<std::string, int>();
  dic.set("count", 100);
  std::vector<isola::process> p_l;
  for (int i = 0; i < 100; ++i) {
    p_l.emplace_back(work, dic, lock);
    p_l.back().start();
  }
  int failed = 0;
  for (auto& p : p_l) {
    p.join();
    failed += p.exitcode() != 0;
  }
  std::printf("{'count': %d}\n", dic.get("count"));

  auto atomic = m.dict<std::string, int>();
  atomic.set("count", 100);
  std::vector<isola::process> q_l;
  for (int i = 0; i < 100; ++i) {
    q_l.emplace_back(work_atomically, atomic);
    q_l.back().start();
  }
  for (auto& p : q_l) {
    p.join();
    failed += p.exitcode() != 0;
  }
  std::printf("update(): {'count': %d}\n", atomic.get("count"));
  if (failed) std::printf("%d processes failed\n", failed);
  return failed ? 1 : 0;
}
