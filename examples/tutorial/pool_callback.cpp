// Mirrors "回调函数" (seed 002): a task's result is handed to a callback, and
// the callback runs in the main process, not in the worker:
//
//   def func1(n):
//       print('func1>>',os.getpid())
//       print('func1')
//       return n*n
//   def func2(nn):
//       print('func2>>',os.getpid())
//       print('func2')
//       print(nn)
//   if __name__ == '__main__':
//       print('主进程:',os.getpid())
//       p = Pool(5)
//       # for i in range(10,20):
//       #     p.apply_async(func1,args=(i,),callback=func2)
//       p.apply_async(func1,args=(10,),callback=func2)
//       p.close()
//       p.join()
//
//   # 主进程: 11852
//   # func1>> 17332
//   # func1
//   # func2>> 11852
//   # func2
//   # 100
//
//   pool_callback [tasks=1]     with more than one, the seed's commented-out
//                               loop: func1(10), func1(11), ... each with the
//                               callback func2
//
// Python's callback= is isola::callbacks<R>{on_result, on_error}. The
// callback runs in the main process, on the pool's dispatcher thread (one
// thread: two callbacks never run at the same time, so the lines of two
// func2 calls never interleave; a worker's func1 lines can come between
// them), and join() returns after the last one.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

int func1(int n) {
  std::cout << "func1>> " << ::getpid() << std::endl;
  std::cout << "func1" << std::endl;
  return n * n;
}

void func2(const int& nn) {
  std::cout << "func2>> " << ::getpid() << std::endl;
  std::cout << "func2" << std::endl;
  std::cout << nn << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  int tasks = 1;
  isola_example::command_line app{"a pool task whose result goes to a callback in the main process"};
  app.add_option("tasks", tasks, "number of tasks");
  if (auto status = app.parse(argc, argv)) return *status;

  std::cout << "主进程: " << ::getpid() << std::endl;
  isola::pool p(5);
  // args里面的10给了func1, func1的返回值作为回调函数的参数给了callback对应的函数
  if (tasks == 1) {
    p.apply_async(isola::callbacks<int>{.on_result = func2, .on_error = {}}, func1, 10);
  } else {
    for (int i = 10; i < 10 + tasks; ++i)
      p.apply_async(isola::callbacks<int>{.on_result = func2, .on_error = {}}, func1, i);
  }
  p.close();
  p.join();
}
