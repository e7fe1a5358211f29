// Mirrors seed 001's synchronization snippets, each made a small program:
//
//   semaphore = multiprocessing.Semaphore(2) # 允许两个进程同时访问资源
//   def worker(semaphore):
//       semaphore.acquire()
//       try: pass  # 执行任务
//       finally: semaphore.release()
//
//   lock = multiprocessing.Lock()
//   def worker(lock):
//       lock.acquire()
//       try: pass  # 执行任务
//       finally: lock.release()
//
//   def worker(stop_event):
//       while not stop_event.is_set():
//           print("Doing work")
//       print("Exiting")
//   stop_event.set() # Signal the process to terminate
//
//   condition = multiprocessing.Condition()
//   def worker_with_condition(condition):
//       with condition:
//           condition.wait() # 等待通知
//
// and "如果需要确保进程按照特定的顺序启动,可以使用multiprocessing.Barrier":
// workers get ready, wait at a barrier, and only then start working.
//
//   sync_primitives [seconds] [fork|forkserver|spawn]
//
// seconds: how long a task takes (default 0.1). The start method (default
// fork): every object goes to the children as a process argument.
#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <isola/barrier.hpp>
#include <isola/condition.hpp>
#include <isola/event.hpp>
#include <isola/lock.hpp>
#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/semaphore.hpp>
#include <isola/start_method.hpp>
#include <isola/value.hpp>

#include "example_cli.hpp"

namespace {

void task(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

// --- Semaphore(2): at most two workers inside at once.
void semaphore_worker(isola::semaphore semaphore, isola::value<int> inside, isola::value<int> most,
                      double seconds) {
  semaphore.acquire();
  int now = inside.fetch_add(1) + 1;  // how many are inside, this one included
  int m = most.load();
  while (now > m && !most.compare_exchange(m, now)) {}
  task(seconds);  // 执行任务
  inside.fetch_sub(1);
  semaphore.release();
}

// --- Lock: one worker at a time prints its two lines, never interleaved.
void lock_worker(isola::lock lock, int i) {
  lock.acquire();
  try {
    std::cout << "worker " << i << " 拿到锁" << std::endl;  // 执行任务
    std::cout << "worker " << i << " 释放锁" << std::endl;
  } catch (...) {
    lock.release();
    throw;
  }
  lock.release();
}

// --- Event as a stop signal.
void event_worker(isola::event stop_event, isola::event started, double seconds) {
  started.set();
  int rounds = 0;
  while (!stop_event.is_set()) {
    if (rounds++ == 0) std::cout << "Doing work" << std::endl;
    task(seconds / 10);  // Do some work here
  }
  std::cout << "Exiting" << std::endl;
}

// --- Condition: wait for a notify.
void worker_with_condition(isola::condition condition) {
  std::unique_lock with(condition);  // with condition:
  condition.wait();                  //     condition.wait() # 等待通知
  std::cout << "worker_with_condition 收到通知" << std::endl;
}

// --- Barrier: everyone gets ready, then everyone starts.
void on_all_ready() { std::cout << "全部就绪" << std::endl; }

void barrier_worker(isola::barrier barrier, int i, double seconds) {
  task(seconds * i / 2);  // some get ready later than others
  std::cout << "worker " << i << " 准备好了" << std::endl;
  barrier.wait();
  std::cout << "worker " << i << " 开始工作" << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 0.1;
  isola_example::command_line app{"semaphore, lock, event, condition and barrier across processes"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  {
    std::cout << "--- Semaphore(2)" << std::endl;
    isola::semaphore semaphore(2);  // 允许两个进程同时访问资源
    isola::value<int> inside(0), most(0);
    std::vector<isola::process> ps;
    for (int i = 0; i < 4; ++i) ps.emplace_back(semaphore_worker, semaphore, inside, most, seconds);
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();
    std::cout << "最多同时 " << most.load() << " 个进程" << std::endl;
  }
  {
    std::cout << "--- Lock" << std::endl;
    isola::lock lock;
    std::vector<isola::process> ps;
    for (int i = 0; i < 3; ++i) ps.emplace_back(lock_worker, lock, i);
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();
  }
  {
    std::cout << "--- Event" << std::endl;
    isola::event stop_event, started;
    isola::process p(event_worker, stop_event, started, seconds);
    p.start();
    started.wait();
    task(seconds);     // Do other things
    stop_event.set();  // Signal the process to terminate
    p.join();          // Wait for the process to exit
    std::cout << "worker exitcode = " << *p.exitcode() << std::endl;
  }
  {
    std::cout << "--- Condition" << std::endl;
    isola::condition condition;
    isola::process p(worker_with_condition, condition);
    p.start();
    while (condition.n_waiting() == 0) task(seconds / 100);  // until it waits
    {
      std::scoped_lock with(condition);
      std::cout << "主进程 notify" << std::endl;
      condition.notify();
    }
    p.join();
  }
  {
    std::cout << "--- Barrier" << std::endl;
    isola::barrier barrier(3, on_all_ready);
    std::vector<isola::process> ps;
    for (int i = 0; i < 3; ++i) ps.emplace_back(barrier_worker, barrier, i, seconds);
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();
  }
}
