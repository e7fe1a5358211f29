// Mirrors seed 003 "通信", multiprocessing.Pipe(): a pipe has two ends, the
// left and the right; what one end sends, the other receives, first in first
// out, and either end can do both (full duplex, "就像网线"):
//
//   >>> pipe_left, pipe_right = multiprocessing.Pipe()  # 创建一个管道,返回管道的两端
//   >>> pipe_left.send(1)       # 在管道的一端,写入一个元素
//   >>> pipe_left.send('hello')
//   >>> pipe_right.recv()       # 在管道的另一端,读取一个元素
//   1
//   >>> pipe_right.recv()
//   'hello'
//
// then the same between two processes ("一个进程往管道中写入数据,其它进程从
// 管道中读取数据"), and a one-way pipe, Pipe(duplex=False), whose first end
// only receives and second only sends: the wrong direction is a value_error.
//
//   pipe_ends [fork|forkserver|spawn]      the start method (default fork)
//
// recv() with no type returns an isola::message, which holds a value of any
// type, as Python's recv() does; print() shows what it holds.
#include <iostream>
#include <optional>
#include <string>
#include <utility>

#include <isola/connection.hpp>
#include <isola/isola.hpp>

#include "example_cli.hpp"

namespace {

// print(obj) for the types this example sends.
void print(const isola::message& m) {
  m.match([](int v) { std::cout << v << std::endl; },
          [](const std::string& s) { std::cout << s << std::endl; },
          [](const isola::message& other) {
            std::cout << "<" << other.type_name() << ">" << std::endl;
          });
}

std::string py(bool b) { return b ? "True" : "False"; }

// The child: reads two messages from the right end, answers on the same end.
void right_side(isola::connection pipe_right) {
  for (int i = 0; i < 2; ++i) {
    auto m = pipe_right.recv();
    std::cout << "子进程 pipe_right.recv(): ";
    print(m);
  }
  pipe_right.send(std::string("你好"));  // 全双工: 右端也可以写
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola_example::command_line app{"the two ends of a pipe, each able to send and receive"};
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;

  {
    auto [pipe_left, pipe_right] = isola::pipe();  // 创建一个管道,返回管道的两端
    pipe_left.send(1);                             // 在管道的一端,写入一个元素
    pipe_left.send(std::string("hello"));
    print(pipe_right.recv());  // 在管道的另一端,读取一个元素: 1
    print(pipe_right.recv());  // hello
    // recv() 只会读取从另一个端口发送的数据,不会读取当前端口发送的数据
    std::cout << "pipe_left.poll() = " << py(pipe_left.poll()) << std::endl;
    pipe_right.send(std::string("world"));
    std::cout << "pipe_left.poll() = " << py(pipe_left.poll()) << std::endl;
    auto m = pipe_left.recv();
    std::cout << "pipe_left.recv() = ";
    print(m);
  }

  {
    // 一个进程往管道中写入数据,其它进程从管道中读取数据
    auto [pipe_left, pipe_right] = isola::pipe();
    isola::process p(right_side, std::move(pipe_right));
    p.start();
    pipe_left.send(1);
    pipe_left.send(std::string("hello"));
    auto answer = pipe_left.recv();
    std::cout << "主进程 pipe_left.recv(): ";
    print(answer);
    p.join();
    std::cout << "p.exitcode = " << p.exitcode().value_or(-1000) << std::endl;
  }

  {
    // Pipe(duplex=False): conn1 只能用于接收, conn2 只能用于发送
    auto [conn1, conn2] = isola::pipe(false);
    std::cout << "conn1: readable = " << py(conn1.readable())
              << ", writable = " << py(conn1.writable()) << std::endl;
    std::cout << "conn2: readable = " << py(conn2.readable())
              << ", writable = " << py(conn2.writable()) << std::endl;
    conn2.send(std::string("单向"));
    auto m = conn1.recv();
    std::cout << "conn1.recv() = ";
    print(m);
    try {
      conn1.send(1);
      std::cout << "conn1.send(1) succeeded" << std::endl;
    } catch (const isola::value_error& e) {
      std::cout << "conn1.send(1): value_error: " << e.what() << std::endl;
    }
    try {
      print(conn2.recv());
      std::cout << "conn2.recv() succeeded" << std::endl;
    } catch (const isola::value_error& e) {
      std::cout << "conn2.recv(): value_error: " << e.what() << std::endl;
    }
  }
}
