// Mirrors multiprocess_main.py of seed 004 ("导入第三方文件的目标函数"): five
// processes whose target, worker(), lives in another file (worker.cpp).
#include <vector>

#include <isola/isola.hpp>

#include "worker.hpp"

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::vector<isola::process> jobs;
  for (int i = 0; i < 5; ++i) {
    isola::process p(worker);
    p.start();
    jobs.push_back(std::move(p));
  }
}
