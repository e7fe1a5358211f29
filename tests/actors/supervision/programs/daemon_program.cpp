// A root that ends while its supervisor (never destroyed: still running at
// exit) has a daemon and a non-daemon child, each in the middle of a slow
// job. Python's rule: the daemon is terminated, the non-daemon is joined.
//
//   daemon_program DIR     (each child writes DIR/<name> when its job is done)
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include <isola/isola.hpp>

using namespace std::chrono_literals;

struct slow_write {
  std::string path;
  int ms = 0;
  template <class A>
  void serialize(A& ar) {
    ar(path, ms);
  }
};
struct ready {
  template <class A>
  void serialize(A&) {}
};

isola::behavior writer() {
  return {[](const ready&) { return true; },
          [](const slow_write& w) {
            std::this_thread::sleep_for(std::chrono::milliseconds(w.ms));
            std::ofstream(w.path) << "done\n";
          }};
}

// Reachable from a global, so that LeakSanitizer does not count it.
isola::supervisor* left_running = nullptr;

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  if (argc < 2) return 2;
  std::string dir = argv[1];
  auto* sup = left_running = new isola::supervisor(  // deliberately left running at exit
      {}, {isola::child_spec::actor("daemon", writer).daemon(true).shutdown(100ms),
           isola::child_spec::actor("worker", writer).daemon(false).shutdown(100ms)});
  auto d = *sup->find("daemon");
  auto w = *sup->find("worker");
  d.request<bool>(ready{}).get(10s);
  w.request<bool>(ready{}).get(10s);
  std::cout << "daemon pid " << d.pid() << "\nworker pid " << w.pid() << std::endl;
  d.send(slow_write{dir + "/daemon", 2000});
  w.send(slow_write{dir + "/worker", 400});
  return 0;
}
