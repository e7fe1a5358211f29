// Mirrors seed 002 "管道" (day 035), the end-of-stream marker: rather than
// closing every copy of the pipe's ends to get an EOFError, give the child
// just one end and, once the messages are sent, send an end marker — Python's
// None — on which the receiver stops. The seed tells it in words; in Python:
//
//   def producer(conn):
//       for i in range(5):
//           conn.send('包子%s' % i)
//       conn.send(None)                # 结束信号
//       print(conn.recv())
//
//   if __name__ == '__main__':
//       conn, child_conn = Pipe()
//       p = Process(target=producer, args=(child_conn,))
//       p.start()
//       while True:
//           res = conn.recv()
//           if res is None:
//               break
//           print(res)
//       conn.send('收到')
//
//   pipe_end_marker [seconds] [fork|forkserver|spawn]
//
// seconds between two messages (default 1); the start method (default fork).
//
// The items are std::optional<std::string> and the marker is std::nullopt.
// The producer still holds its end open (it waits for the consumer's reply)
// when the consumer stops: the consumer stops on the marker, not on EOF.
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include <isola/connection.hpp>
#include <isola/isola.hpp>

#include "example_cli.hpp"

namespace {

using item = std::optional<std::string>;

void producer(isola::connection conn, double seconds) {
  for (int i = 0; i < 5; ++i) {
    std::string res = "包子" + std::to_string(i);
    conn.send(item{res});
    std::cout << "生产者发送了 " << res << std::endl;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
  conn.send(item{});  // 结束信号 None
  std::cout << "生产者发送了结束信号 None" << std::endl;
  std::cout << "生产者收到回复: " << conn.recv<std::string>() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"a pipe read until the producer sends an end marker"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  auto [conn, child_conn] = isola::pipe();
  isola::process p(producer, std::move(child_conn), seconds);
  p.start();

  int received = 0;
  while (true) {
    auto res = conn.recv<item>();
    if (!res) {  // if res is None: break
      std::cout << "消费者收到结束信号 None,共收到 " << received << " 个,停止接收" << std::endl;
      break;
    }
    ++received;
    std::cout << "消费者收到了 " << *res << std::endl;
  }
  conn.send(std::string("收到"));
  p.join();
  std::cout << "生产者结束, exitcode = " << p.exitcode().value_or(-1000) << std::endl;
}
