// Mirrors seed 003 "控制输出": stdout into a pipe, stderr to wherever stdout
// goes (subprocess.STDOUT); communicate() returns both, the output once: a
// second call is a value_error (Python: "read of closed file"). Then a
// program's output read line by line while it runs (`for line in p.stdout`).
#include <iostream>
#include <string>

#include <isola/isola.hpp>

using isola::stdio;

namespace {

std::string repr(const std::string& s) {
  std::string r = "b'";
  for (char c : s) r += c == '\n' ? std::string("\\n") : std::string(1, c);
  return r + "'";
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola::popen p({"echo", "Hello"}, {.out = stdio::pipe, .err = stdio::to_stdout});
  auto [out, err] = p.communicate();
  std::cout << "p.communicate() = (" << repr(out) << ", " << repr(err) << ")\n";
  try {
    p.communicate();
  } catch (const isola::value_error& e) {
    std::cout << "p.communicate() again: value_error: " << e.what() << "\n";
  }

  // Both streams of a program, kept apart.
  isola::popen q({"sh", "-c", "echo to stdout; echo to stderr >&2; exit 2"},
                 {.out = stdio::pipe, .err = stdio::pipe});
  auto r = q.communicate();
  std::cout << "stdout: " << repr(r.out) << ", stderr: " << repr(r.err)
            << ", returncode: " << *q.returncode() << "\n";

  // Line by line, as the program writes them.
  isola::popen lines({"sh", "-c", "for i in 1 2 3; do echo line $i; done"}, {.out = stdio::pipe});
  while (auto line = lines.out().read_line()) std::cout << "read_line(): " << *line;
  std::cout << "end of output, wait() = " << lines.wait() << "\n";
  return 0;
}
