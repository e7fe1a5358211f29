// Mirrors seed 003's note on multiprocessing.managers: "使用 multiprocessing.managers
// 可以让不同主机的 Python 进程之间进行通信 ... 需要运行一个 Manager 服务器进程,
// 监听一个 TCP 端口。然后让各个主机的 Python 进程连接到 Manager 服务器。"
// The Python version:
//
//   # server host
//   class QueueManager(BaseManager): pass
//   jobs = queue.Queue()
//   QueueManager.register('get_jobs', callable=lambda: jobs)
//   m = QueueManager(address=('', 50000), authkey=b'abracadabra')
//   m.start()
//   # consumer host
//   m = QueueManager(address=('server', 50000), authkey=b'abracadabra')
//   m.connect()
//   jobs = m.get_jobs()
//   while (job := jobs.get()) is not None: ...
//
// Here both "hosts" are processes on the loopback: the producer starts a
// manager, serves it on a TCP port with the key and puts jobs on the named
// queue "jobs"; the consumer is a spawned process (it shares nothing with the
// producer but the port number and the key, as another host would) that
// connects, takes the jobs until the end marker -1 and puts its total on the
// named queue "results". A third process tries a wrong key and is refused.
//
//   manager_remote [port]     (default 0: any free port)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

const std::string key = "abracadabra";

int consumer(int port) {
  auto m = isola::manager::connect("127.0.0.1", static_cast<std::uint16_t>(port), key);
  auto jobs = m.queue<int>("jobs");
  auto results = m.queue<long>("results");
  long total = 0;
  int n = 0;
  for (;;) {
    int job = jobs.get(std::chrono::seconds(30));
    if (job < 0) break;
    total += job;
    ++n;
  }
  std::printf("consumer: %d jobs, total %ld\n", n, total);
  std::fflush(stdout);
  results.put(total);
  return 0;
}

int intruder(int port) {
  try {
    isola::manager::connect("127.0.0.1", static_cast<std::uint16_t>(port), "not the key");
    std::printf("intruder: connected?!\n");
    return 1;
  } catch (const isola::authentication_error& e) {
    std::printf("intruder: refused (authentication_error)\n");
    return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  int want = 0;
  isola_example::command_line app{"a manager's queue served over TCP with an authkey"};
  app.add_option("port", want, "port to serve on (0: any free one)");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::manager m;
  std::uint16_t port = m.serve(static_cast<std::uint16_t>(want), key);
  std::printf("producer: serving on 127.0.0.1:%u\n", port);
  std::fflush(stdout);
  auto jobs = m.queue<int>("jobs", 10);  // bounded: the producer waits for the consumer
  auto results = m.queue<long>("results");

  isola::process_options other_host{.method = isola::start_method::spawn};
  isola::process c(other_host, consumer, static_cast<int>(port));
  isola::process bad(other_host, intruder, static_cast<int>(port));
  c.start();
  bad.start();
  for (int i = 1; i <= 1000; ++i) jobs.put(i);
  jobs.put(-1);
  long total = results.get(std::chrono::seconds(60));
  std::printf("producer: the consumer's total is %ld (expected %d)\n", total, 1000 * 1001 / 2);
  c.join();
  bad.join();
  std::printf("auth failures seen by the manager: %llu\n",
              static_cast<unsigned long long>(m.stats().auth_failures));
  return (total == 500500 && c.exitcode() == 0 && bad.exitcode() == 0) ? 0 : 1;
}
