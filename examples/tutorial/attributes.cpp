// Mirrors seed 003 "Process()": a process's attributes before start(), while
// it runs and after join():
//
//   >>> p = multiprocessing.Process(target=print, args=('hello',))
//   >>> p.start()
//   hello
//   >>> p.name  -> 'Process-1'     p.pid      -> 15176
//   >>> p.daemon -> False          p.exitcode -> 0
//   >>> p.is_alive() -> False
//   >>> multiprocessing.current_process()  -> name='MainProcess'
//   >>> multiprocessing.active_children()  -> []
//
// isola's default names are "process-N"; pid() is 0 before start(), and an
// empty exitcode() is printed as Python's None.
#include <iostream>
#include <optional>
#include <string>

#include <isola/isola.hpp>

namespace {

void print(const std::string& s) { std::cout << s << std::endl; }

std::string py(bool b) { return b ? "True" : "False"; }
std::string py(std::optional<int> code) { return code ? std::to_string(*code) : "None"; }

void show(const char* when, const isola::process& p) {
  std::cout << when << ": p.name = '" << p.name() << "', p.pid = " << p.pid()
            << ", p.daemon = " << py(p.daemon()) << ", p.exitcode = " << py(p.exitcode())
            << ", p.is_alive() = " << py(p.is_alive()) << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};

  isola::process p(print, "hello");
  show("initial", p);  // 此时进程处于 initial 状态,也就是已经初始化,尚未启动
  p.start();           // 启动进程
  show("started", p);  // exitcode is None while it runs, 0 if it has already ended
  p.join();
  show("joined", p);  // 如果进程已终止,则可以查看其退出码

  auto self = isola::current_process();
  std::cout << "current_process(): name = '" << self.name << "', daemon = " << py(self.daemon)
            << std::endl;
  std::cout << "active_children(): [";
  const char* sep = "";
  for (auto& c : isola::active_children()) {
    std::cout << sep << c.name;
    sep = ", ";
  }
  std::cout << "]" << std::endl;
}
