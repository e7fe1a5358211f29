// Mirrors the first program of seed 004 ("基础方法", 简单的使用方法): five
// processes, each printing "working!".
//
// As in the seed, main() keeps the handles in `jobs` and does not join them;
// `rt` joins its non-daemon children when main() ends.
#include <iostream>
#include <vector>

#include <isola/isola.hpp>

void worker() { std::cout << "working!" << std::endl; }

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::vector<isola::process> jobs;
  for (int i = 0; i < 5; ++i) {
    isola::process p(worker);
    p.start();
    jobs.push_back(std::move(p));
  }
}
