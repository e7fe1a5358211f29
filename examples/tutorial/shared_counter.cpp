// Mirrors seed 002's shared counter: 100 processes each take one from a
// shared count of 100 under a lock, and it ends at 0.
//
//   from multiprocessing import Manager,Process,Lock
//   def work(d,lock):
//       with lock: #不加锁而操作共享的数据,肯定会出现数据错乱
//           d['count']-=1
//   if __name__ == '__main__':
//       lock=Lock()
//       with Manager() as m:
//           dic=m.dict({'count':100})
//           p_l=[]
//           for i in range(100):
//               p=Process(target=work,args=(dic,lock))
//               p_l.append(p)
//               p.start()
//           for p in p_l:
//               p.join()
//           print(dic)
//
// The count is an isola::value<int> here (a manager's dict is another
// example's); it is made raw, because the seed's lock is what guards it.
//
//   shared_counter [fork|forkserver|spawn] [processes]
#include <iostream>
#include <mutex>
#include <vector>

#include <isola/lock.hpp>
#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/start_method.hpp>
#include <isola/value.hpp>

#include "example_cli.hpp"

namespace {

void work(isola::value<int> count, isola::lock lock) {
  std::scoped_lock with(lock);  // 不加锁而操作共享的数据,肯定会出现数据错乱
  count.store(count.load() - 1);
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  int n = 100;
  isola_example::command_line app{"processes each take one from a shared count under a lock"};
  isola_example::add_start_method(app);
  app.add_option("processes", n, "number of processes");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::lock lock;
  isola::value<int> count(n, isola::raw);  // {'count': 100}
  std::vector<isola::process> p_l;
  for (int i = 0; i < n; ++i) {
    p_l.emplace_back(work, count, lock);
    p_l.back().start();
  }
  int failed = 0;
  for (auto& p : p_l) {
    p.join();
    if (p.exitcode() != 0) ++failed;
  }
  std::cout << "{'count': " << count.load() << "}" << std::endl;
  if (failed) std::cout << failed << " 个进程失败" << std::endl;
}
