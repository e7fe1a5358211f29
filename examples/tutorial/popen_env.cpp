// Mirrors seed 003 "在当前环境变量的基础上,更新环境变量": the child gets our
// environment plus test_id=1 (Python's env = os.environ.copy();
// env.update({'test_id': '1'})), shown by the `env` program. Then an
// environment that replaces ours entirely (Python's env={...}).
#include <iostream>
#include <map>
#include <string>

#include <isola/isola.hpp>

using isola::stdio;

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  ::setenv("ISOLA_EXAMPLE_INHERITED", "yes", 1);

  isola::popen p("env", {.out = stdio::pipe, .env_update = {{"test_id", "1"}}});
  auto out = p.communicate().out;
  std::cout << "extended environment:\n" << out;

  isola::popen q("env",
                 {.out = stdio::pipe, .env = std::map<std::string, std::string>{{"ONLY", "this"}}});
  std::cout << "replaced environment:\n" << q.communicate().out;
  return 0;
}
