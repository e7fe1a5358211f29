// Mirrors seed 003 on shell=True: without a shell, shell syntax and builtins
// mean nothing (no $HOME expansion, no pipes); with `.shell = true` (or
// sh -c, the seed's `cmd /c` on Windows) they work. A program that does not
// exist is an os_error from the constructor (Python: FileNotFoundError).
//
// Unlike Python, a string without shell is split like shlex.split, so
// popen("echo Hello") runs echo with the argument Hello.
#include <iostream>
#include <string>

#include <isola/isola.hpp>

using isola::stdio;

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::cout << "popen(\"echo Hello\"): "
            << isola::popen("echo Hello", {.out = stdio::pipe}).communicate().out;
  std::cout << "popen({\"sh\", \"-c\", \"echo Hello\"}): "
            << isola::popen({"sh", "-c", "echo Hello"}, {.out = stdio::pipe}).communicate().out;
  std::cout << "popen(\"echo Hello\", shell): "
            << isola::popen("echo Hello", {.out = stdio::pipe, .shell = true}).communicate().out;

  ::setenv("GREETING", "你好", 1);
  std::cout << "without shell: "
            << isola::popen("echo $GREETING | tr a b", {.out = stdio::pipe}).communicate().out;
  std::cout << "with shell: "
            << isola::popen("echo $GREETING | tr a b", {.out = stdio::pipe, .shell = true})
                   .communicate()
                   .out;

  try {
    isola::popen p("no-such-command --help");
  } catch (const isola::os_error& e) {
    std::cout << "os_error (errno " << e.code() << "): " << e.what() << "\n";
  }
  return 0;
}
