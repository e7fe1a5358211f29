// Mirrors "进程池的同步异步: 异步" (seed 002): apply_async() returns at once
// with a future (Python's AsyncResult); the four workers run the ten tasks
// side by side, and get() waits for each result in turn:
//
//   def func(i):
//       time.sleep(2)
//       # print(os.getpid())
//       return i**2
//   if __name__ == '__main__':
//       p=Pool(4)
//       res_list=[]
//       for i in range(10):
//           res=p.apply_async(func,args=(i,)) #异步的方法 得到返回值
//           res_list.append(res)
//       for i in res_list:
//           print(i.get())
//
//   pool_apply_async [seconds]     each task's sleep (default 2, as in the seed)
//
// It prints 0, 1, 4, ..., 81, one a line, in the order of res_list, after
// three rounds of sleeps (4 + 4 + 2 tasks) instead of ten.
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

int func(int i, double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  // std::cout << ::getpid() << std::endl;
  return i * i;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 2.0;
  isola_example::command_line app{"pool.apply_async() and get()"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::pool p(4);
  std::vector<isola::future<int>> res_list;
  for (int i = 0; i < 10; ++i) {
    isola::future<int> res = p.apply_async(func, i, seconds);  // 异步的方法 得到返回值
    res_list.push_back(res);
  }
  for (auto& i : res_list) std::cout << i.get() << std::endl;
}
