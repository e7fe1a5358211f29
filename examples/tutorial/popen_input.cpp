// Mirrors seed 003 "控制输入": bytes to a program's stdin through
// communicate(input, timeout=10); on timeout the program is killed and its
// output collected with a second communicate(), the idiom the seed shows:
//
//   try: output = p.communicate(stdin, timeout=10)[0]
//   except subprocess.TimeoutExpired: p.kill(); output = p.communicate()[0]
//
//   popen_input [seconds]   a timeout; with "slow" as a second argument the
//                           program sleeps 60 s before it reads, so the
//                           timeout path runs
#include <iostream>
#include <string>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

using isola::stdio;

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  double timeout = 10;
  std::string speed;
  isola_example::command_line app{"input to a child's stdin with communicate(), within a timeout"};
  app.add_option("timeout", timeout, "seconds communicate() waits");
  app.add_option("slow", speed, "slow: a child that never reads its input");
  if (auto status = app.parse(argc, argv)) return *status;
  bool slow = speed == "slow";
  std::string input = "Hello World";

  std::vector<std::string> cmd{"cat"};
  if (slow) cmd = {"sh", "-c", "printf 'started, '; exec sleep 60"};
  isola::popen p(cmd, {.in = stdio::pipe, .out = stdio::pipe, .err = stdio::to_stdout});
  std::string output;
  try {
    output = p.communicate(input, isola::duration(timeout)).out;
  } catch (const isola::timeout_error& e) {
    std::cout << "timeout_error: " << e.what() << "\n";
    p.kill();
    output = p.communicate().out;  // what it wrote before, and the end of it
  }
  std::cout << "output = " << output << "\n";
  std::cout << "returncode = " << *p.returncode() << "\n";
  return 0;
}
