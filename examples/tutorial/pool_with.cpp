// Mirrors the last program of seed 001 (multiprocessing with asyncio): each
// of two worker processes "downloads" one url, side by side, inside Python's
// `with Pool(...) as pool:` block, here a C++ scope:
//
//   async def download(url):
//       print(f'Downloading {url}')
//       await asyncio.sleep(1)
//       print(f'Downloaded {url}')
//   def worker(url):
//       asyncio.run(download(url))
//   if __name__ == '__main__':
//       urls = ['http://www.example.com', 'http://www.python.org']
//       with multiprocessing.Pool(processes=2) as pool:
//           pool.map(worker, urls)
//
//   pool_with [seconds]     the download's sleep (default 1, as in the seed)
//
// The seed's worker(url) takes only the url; the sleep is set in each worker
// by the pool's initializer (a global set in main() would not reach workers
// started from the forkserver, which forked before main() ran).
//
// The seed's worker returns None; this twin's returns its pid, and main()
// prints which process downloaded which url (two, side by side).
//
// Leaving the block destroys the pool, and ~pool() terminates it, as leaving
// Python's with-block calls terminate(): the workers are gone when the next
// statement runs, and a task still running is cut off. To show it, this
// twin starts a third download just before the end of the block (it never
// finishes: its future fails with cancelled_error) and prints, after the
// block, whether each of the two processes still exists (kill(pid, 0)).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double download_seconds = 1.0;  // in each worker, set by its initializer

void set_download_seconds(double seconds) { download_seconds = seconds; }

void download(const std::string& url) {
  std::cout << "Downloading " << url << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(download_seconds));
  std::cout << "Downloaded " << url << std::endl;
}

int worker(const std::string& url) {
  download(url);
  return static_cast<int>(::getpid());
}

bool exists(int pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"a pool ended at the end of its block cancels what is still running"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  if (auto status = app.parse(argc, argv)) return *status;

  std::vector<std::string> urls{"http://www.example.com", "http://www.python.org"};
  std::vector<int> pids;
  isola::future<int> late;
  {
    // with multiprocessing.Pool(processes=2) as pool:
    isola::pool pool(
        isola::pool_options{.processes = 2}.initializer(set_download_seconds, seconds));
    pids = pool.map(worker, urls);
    for (std::size_t i = 0; i < urls.size(); ++i)
      std::cout << urls[i] << " 由进程 " << pids[i] << " 下载" << std::endl;
    late = pool.apply_async(worker, std::string("http://www.late.org"));
  }  // ~pool(): terminate()
  try {
    late.get();
    std::cout << "http://www.late.org 下载完了" << std::endl;
  } catch (const isola::cancelled_error& e) {
    std::cout << "with 块结束时还没下载完的 http://www.late.org: cancelled_error: " << e.what()
              << std::endl;
  }
  for (int pid : pids)
    std::cout << "with 块之后, 进程 " << pid << " 存在: " << (exists(pid) ? "True" : "False")
              << std::endl;
}
