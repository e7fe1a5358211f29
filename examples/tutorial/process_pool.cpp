// Mirrors net04_process_pool.py (seed 000, section 5.5 "进程池Pool"): five
// singers, but a pool of at most three processes, so singers 4 and 5 start
// only once one of the first three has finished:
//
//   def sing(singer_num, sleep_time):
//       for i in range(4):
//           print('歌手', singer_num, '正在唱歌呢 %d' % i)
//           time.sleep(sleep_time)  # 休息
//
//   processes = multiprocessing.Pool(3) # 创建进程池,最大进程数为3
//   for i in range(5):
//       processes.apply_async(sing, (i + 1, 1 + 0.3 * i))
//   print('歌唱开始')
//   processes.close()
//   processes.join()
//   print('歌唱结束')
//
//   process_pool [seconds]     the first singer's rest (default 1, as in the
//                              seed); singer i+1 rests seconds * (1 + 0.3 i)
//
// The seed's sing() returns nothing; this twin's returns its process's pid,
// and main() prints each singer's pid after join(), so that its ctest can
// check that the five singers sang in three processes: singer 4 in singer
// 1's (the first to finish), singer 5 in singer 2's.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

int sing(int singer_num, double sleep_time) {
  for (int i = 0; i < 4; ++i) {
    std::cout << "歌手 " << singer_num << " 正在唱歌呢 " << i << std::endl;
    std::this_thread::sleep_for(std::chrono::duration<double>(sleep_time));  // 休息
  }
  return static_cast<int>(::getpid());
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"five singers on a pool of three processes"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::pool processes(3);  // 创建进程池,最大进程数为3
  std::vector<isola::future<int>> singers;
  for (int i = 0; i < 5; ++i)  // 进程池创建进程, 传入参数为歌手编号和歌唱间隔休息时间
    singers.push_back(processes.apply_async(sing, i + 1, seconds * (1 + 0.3 * i)));

  std::cout << "歌唱开始" << std::endl;
  processes.close();
  processes.join();
  std::cout << "歌唱结束" << std::endl;

  for (int i = 0; i < 5; ++i)
    std::cout << "歌手 " << i + 1 << " 的进程pid: " << singers[i].get() << std::endl;
}
