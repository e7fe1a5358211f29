// Mirrors seed 003 "Process()": start() may be called once per process.
//
//   >>> p.start()   # 每个进程只允许调用一次 start() 方法
//   AssertionError: cannot start a process twice
//
// isola raises isola::process_error with the same message.
#include <iostream>
#include <string>

#include <isola/isola.hpp>

void print(const std::string& s) { std::cout << s << std::endl; }

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola::process p(print, "hello");
  p.start();  // 启动进程
  try {
    p.start();  // 每个进程只允许调用一次 start() 方法
    std::cout << "started twice?!" << std::endl;
  } catch (const isola::process_error& e) {
    std::cout << "isola::process_error: " << e.what() << std::endl;
  }
  p.join();
  std::cout << "p.exitcode = " << *p.exitcode() << std::endl;
}
