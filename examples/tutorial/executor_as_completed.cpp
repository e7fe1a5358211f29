// Mirrors the concurrent.futures program of seed 001 (异步 I/O 与
// concurrent.futures), with the process pool the seed names next to its
// ThreadPoolExecutor: ten tasks are submitted, and as_completed hands back
// their futures in the order the tasks finish, not the order they were
// submitted:
//
//   def async_io_task(i):
//       # 异步 I/O 操作,如网络请求或文件读写
//       pass
//   with ThreadPoolExecutor() as executor:
//       futures = {executor.submit(async_io_task, i) for i in range(10)}
//       for future in as_completed(futures):
//           result = future.result()
//           # 处理结果
//
//   executor_as_completed [seconds=0.1]
//
// The "I/O" of task i is a sleep of (10 - i) * seconds: the first submitted
// waits longest. The executor has four workers (the seed's default,
// cpu_count(), would make the order depend on the machine). Each result is
// the task's number and its worker's pid, printed as "任务 3 完成 (pid 1234)";
// tasks 0 to 3 start together, so task 3 is done first and task 0 after
// tasks 1, 2 and 3. Leaving the block shuts the executor down (waiting for
// the tasks), as Python's with does.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

struct io_result {
  int i = 0;
  int pid = 0;
  template <class A>
  void serialize(A& ar) {
    ar(i, pid);
  }
};

io_result async_io_task(int i, double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>((10 - i) * seconds));  // 异步 I/O 操作
  return {i, static_cast<int>(::getpid())};
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 0.1;
  isola_example::command_line app{"results of a process_pool_executor in the order they complete"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  std::cout << "主进程pid: " << ::getpid() << std::endl;
  int done = 0;
  {
    isola::process_pool_executor executor(4);
    std::vector<isola::future<io_result>> futures;
    for (int i = 0; i < 10; ++i) futures.push_back(executor.submit(async_io_task, i, seconds));
    for (auto& future : isola::as_completed(futures)) {
      io_result result = future.get();
      std::cout << "任务 " << result.i << " 完成 (pid " << result.pid << ")"
                << std::endl;  // 处理结果
      ++done;
    }
  }
  std::cout << "全部完成: " << done << " 个" << std::endl;
}
