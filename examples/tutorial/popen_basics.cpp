// Mirrors seed 003 "Popen()", 常用属性和方法: run `pwd` from a command string
// and `echo Hello` from a list of arguments (their output goes straight to
// ours: nothing is piped), then the attributes and methods the seed shows:
// args, pid, communicate() with nothing piped, wait(timeout), returncode,
// kill() on a program that has ended, and send_signal(SIGTERM) on one that
// has not.
#include <csignal>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <isola/isola.hpp>

using namespace std::chrono_literals;

namespace {

std::string py_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", '" : "'") + v[i] + "'";
  return s + "]";
}

std::string show(std::optional<int> code) { return code ? std::to_string(*code) : "None"; }

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  char cwd[4096];
  std::cout << "os.getcwd() = " << ::getcwd(cwd, sizeof cwd) << std::endl;

  isola::popen p("pwd");  // a string is a command line; `pwd` prints our directory
  p.wait();

  isola::popen q({"echo", "Hello"});  // a list: the program, then its arguments
  q.wait();
  std::cout << "p.args = " << py_list(q.args()) << "\n";
  std::cout << "p.pid = " << q.pid() << "\n";
  auto [out, err] = q.communicate();  // nothing piped: nothing to return, it only waits
  std::cout << "p.communicate() = (\"" << out << "\", \"" << err << "\")\n";
  std::cout << "p.wait(10s) = " << q.wait(10s) << "\n";
  std::cout << "p.returncode = " << show(q.returncode()) << "\n";
  q.kill();  // it has ended: a no-op, as in Python
  std::cout << "p.kill() after the end: returncode still " << show(q.returncode()) << "\n";

  isola::popen s({"sleep", "60"});
  std::cout << "sleep 60: returncode = " << show(s.returncode()) << "\n";
  s.send_signal(SIGTERM);  // p.send_signal(sig=signal.SIGTERM)
  std::cout << "after send_signal(SIGTERM): wait() = " << s.wait() << "\n";
  return 0;
}
