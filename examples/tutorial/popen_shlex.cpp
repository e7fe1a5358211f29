// Mirrors seed 003 "shlex.split()": a command line becomes a list of
// arguments; comments are kept unless asked; POSIX rules make a backslash
// escape the next character (so a Windows path loses its backslashes; the
// seed's posix=False mode has no twin here). isola::popen splits a string
// command the same way, so the quoted "Hello World" reaches echo as one
// argument.
#include <iostream>
#include <string>
#include <vector>

#include <isola/isola.hpp>

namespace {

std::string py_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", '" : "'") + v[i] + "'";
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::cout << py_list(isola::shlex_split(R"(echo "Hello World")")) << "\n";
  std::cout << py_list(isola::shlex_split("D:/test/1.py # test")) << "\n";
  std::cout << py_list(isola::shlex_split("D:/test/1.py # test", /*comments=*/true)) << "\n";
  std::cout << py_list(isola::shlex_split(R"(D:\test\1.py)")) << "\n";
  try {
    isola::shlex_split(R"(echo "Hello)");
  } catch (const isola::value_error& e) {
    std::cout << "value_error: " << e.what() << "\n";
  }
  std::cout << "shlex_join: " << isola::shlex_join({"echo", "Hello World", "it's"}) << std::endl;

  isola::popen p(R"(echo "Hello World")", {.out = isola::stdio::pipe});
  std::cout << "args = " << py_list(p.args()) << "\n";
  std::cout << "output: " << p.communicate().out;
  return 0;
}
