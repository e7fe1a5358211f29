// Mirrors the first program of seed 002's "进程池和multiprocess Pool 模块": the
// same 100 small tasks, once on a pool of 4 processes, once on 100 processes
// of their own, and the time each took:
//
//   def func(n):
//       for i in range(5):
//           n=n=i
//           print(n)
//   if __name__ == '__main__':
//       pool_start_time=time.time()
//       pool= Pool(4)
//       pool.map(func,range(100))
//       pool_end_time=time.time()
//       pool_dif_time=pool_end_time-pool_start_time
//       p_s_time=time.time()
//       p_list=[]
//       for i in range(100):
//           p2=Process(target=func,args=(i,))
//           p2.start()
//           p_list.append(p2)
//       [p.join() for p in p_list]
//       p_e_time=time.time()
//       p_dif_time=p_e_time-p_s_time
//       print("进程池时间",pool_dif_time)
//       print("多进程时间",p_dif_time)
//
//   pool_vs_processes [tasks=100]
//
// The 100 processes start from the forkserver, as the pool's workers do
// (the pool's dispatcher thread makes the root multi-threaded, and a plain
// fork of a threaded process is what Python warns against): the two timings
// differ by the number of processes started, 4 against 100.
//
// After the seed's two lines this twin prints how many processes did the
// work each way ("进程池进程数 4", "多进程进程数 100"): the number of distinct
// pids. For that the pool runs func_pid, which is func returning its pid.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <set>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

void func(int n) {
  for (int i = 0; i < 5; ++i) {
    n = i;
    std::cout << n << std::endl;
  }
}

int func_pid(int n) {
  func(n);
  return static_cast<int>(::getpid());
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  int tasks = 100;
  isola_example::command_line app{"a pool of 4 against one process per task"};
  app.add_option("tasks", tasks, "number of tasks");
  if (auto status = app.parse(argc, argv)) return *status;
  std::vector<int> range;
  for (int i = 0; i < tasks; ++i) range.push_back(i);

  auto pool_start_time = std::chrono::steady_clock::now();
  isola::pool pool(4);
  std::vector<int> pool_pids = pool.map(func_pid, range);
  double pool_dif_time = since(pool_start_time);

  auto p_s_time = std::chrono::steady_clock::now();
  std::vector<isola::process> p_list;
  for (int i : range) {
    isola::process p2(isola::process_options{.method = isola::start_method::forkserver}, func, i);
    p2.start();
    p_list.push_back(std::move(p2));
  }
  for (auto& p : p_list) p.join();
  double p_dif_time = since(p_s_time);

  std::cout << "进程池时间 " << pool_dif_time << std::endl;
  std::cout << "多进程时间 " << p_dif_time << std::endl;

  std::set<int> pids;
  for (auto& p : p_list) pids.insert(p.pid());
  std::cout << "进程池进程数 " << std::set<int>(pool_pids.begin(), pool_pids.end()).size()
            << std::endl;
  std::cout << "多进程进程数 " << pids.size() << std::endl;
}
