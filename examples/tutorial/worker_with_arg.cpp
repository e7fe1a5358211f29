// Mirrors the third program of seed 004 ("要传递参数的话,这个参数必须能pickle序列化"):
// worker(i) prints "worker<i>" for i in 0..4. Here the argument must be
// cereal-serializable (an int is) to travel under forkserver and spawn.
//
// The seed shows worker0 ... worker4 in order; the processes run side by
// side, so the order of their lines is up to the scheduler. The handles are
// joined in order.
#include <iostream>
#include <vector>

#include <isola/isola.hpp>

void worker(int i) { std::cout << "worker" << i << std::endl; }

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::vector<isola::process> jobs;
  for (int i = 0; i < 5; ++i) {
    isola::process p(worker, i);
    p.start();
    jobs.push_back(std::move(p));
  }
  for (auto& p : jobs) p.join();
}
