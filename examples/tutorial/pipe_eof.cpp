// Mirrors seed 002 "管道" (day 035), the EOFError case: "主进程和子进程中的管道
// 的相同一端都关闭了,出现EOFError" — once one end of a Pipe() is closed in
// every process that held it, recv() at the other end raises EOFError (after
// the messages already sent). The seed tells it in words; in Python:
//
//   def f(child_conn):
//       for word in ['hello', 'world', '再见']:
//           child_conn.send(word)
//       child_conn.close()
//
//   if __name__ == '__main__':
//       parent_conn, child_conn = Pipe()
//       p = Process(target=f, args=(child_conn,))
//       p.start()
//       child_conn.close()             # 不写close将不会引发EOFError
//       while True:
//           try:
//               print(parent_conn.recv())
//           except EOFError:
//               parent_conn.close()
//               break
//       p.join()
//
//   pipe_eof [seconds] [fork|forkserver|spawn]
//
// seconds between two messages (default 1); the start method (default fork).
//
// In isola the child is given the end it uses, child_conn, moved in as an
// argument: start() drops the parent's copy of it (Python's
// child_conn.close() in the parent), and the child closes its own when it is
// done. No process holds child_conn any more, so the parent's recv() throws
// eof_error. (Under fork the child also inherits the parent's parent_conn,
// which it has no handle to close: harmless here, where the parent reads,
// but a child reading until EOF from a parent that writes would wait for
// ever under fork.) Finally, as the seed's second error case: receiving on
// an end that is itself closed is an error too (Python: OSError; isola:
// value_error).
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include <isola/connection.hpp>
#include <isola/isola.hpp>

#include "example_cli.hpp"

namespace {

void f(isola::connection child_conn, double seconds) {
  for (const char* word : {"hello", "world", "再见"}) {
    child_conn.send(std::string(word));
    std::cout << "子进程发送: " << word << std::endl;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
  std::cout << "子进程关闭child_conn" << std::endl;
  child_conn.close();
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double seconds = 1.0;
  isola_example::command_line app{"a pipe read until EOF, once the child closed its end"};
  app.add_option("seconds", seconds, "seconds a step sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  auto [parent_conn, child_conn] = isola::pipe();
  isola::process p(f, std::move(child_conn), seconds);
  p.start();  // drops the parent's copy of child_conn: Python's child_conn.close()

  while (true) {
    try {
      auto s = parent_conn.recv<std::string>();
      std::cout << "主进程收到: " << s << std::endl;
    } catch (const isola::eof_error& e) {
      // child_conn 在主进程和子进程中都关闭了
      std::cout << "EOFError: 管道另一端已全部关闭,接收结束 (" << e.what() << ")" << std::endl;
      parent_conn.close();
      break;
    }
  }
  try {
    parent_conn.recv<std::string>();  // 用已经关闭的一端去接收消息
  } catch (const isola::value_error& e) {
    std::cout << "对已关闭的一端recv: value_error: " << e.what() << std::endl;
  }
  p.join();
  std::cout << "子进程结束, exitcode = " << p.exitcode().value_or(-1000) << std::endl;
}
