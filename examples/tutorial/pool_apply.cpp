// Mirrors "进程池的同步异步: 同步" (seed 002): apply() hands one task to the
// pool and waits for its result, so ten tasks of a second each take ten
// seconds even on a pool of four:
//
//   def func(i):
//       time.sleep(1)
//       return i**2
//   if __name__ == '__main__':
//       p=Pool(4)
//       for i in range(10):
//           res=p.apply(func,args=(i,)) #同步的方法多个进程完成任务 可以得到返回值也可以不提取返回值
//           print(res)
//
//   pool_apply [seconds]     each task's sleep (default 1, as in the seed)
//
// It prints 0, 1, 4, ..., 81, one a line, in that order.
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

int func(int i, double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return i * i;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"pool.apply() waits for each result"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::pool p(4);
  for (int i = 0; i < 10; ++i) {
    int res =
        p.apply(func, i, seconds);  // 同步的方法多个进程完成任务 可以得到返回值也可以不提取返回值
    std::cout << res << std::endl;
  }
}
