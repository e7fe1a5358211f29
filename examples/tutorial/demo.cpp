// The main demo: a short tour of isola's foundation.
//  - the same function started under fork, forkserver and spawn, with
//    arguments that travel as bytes;
//  - Python's exit codes: 0, N, 1 for an uncaught exception, -15 after
//    terminate();
//  - a heterogeneous message matched on its type.
#include <isola/isola.hpp>

#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

struct order {
  std::string dish;
  int count = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(dish, count);
  }
};

int cook(order o, std::vector<std::string> helpers) {
  std::cout << "  [" << isola::current_process().name << " pid " << ::getpid() << "] cooking "
            << o.count << " x " << o.dish << " with " << helpers.size() << " helpers" << std::endl;
  return o.count;
}

void crash() { throw std::runtime_error("the soup is burnt"); }

void wait_forever() {
  for (;;) ::pause();
}

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};  // first line of main: makes spawn and forkserver work

  std::cout << "isola demo: " << isola::cpu_count() << " CPUs, parent pid " << ::getpid()
            << "\n\n1. One target under every start method\n";
  for (auto m : isola::all_start_methods()) {
    isola::process p(isola::process_options{.method = m}, cook, order{"dumplings", 3},
                     std::vector<std::string>{"Jam", "Jackson"});
    p.start();
    p.join();
    std::cout << "  " << m << ": " << p.name() << " exited with " << *p.exitcode() << "\n";
  }

  std::cout << "\n2. Exit codes, as Python reports them\n";
  isola::process bad(crash);
  bad.start();
  bad.join();
  std::cout << "  uncaught exception -> exitcode " << *bad.exitcode() << "\n";
  isola::process sleeper(isola::process_options{.name = "sleeper"}, wait_forever);
  sleeper.start();
  std::cout << "  sleeper alive after join(50ms)? " << std::boolalpha
            << !sleeper.join(std::chrono::milliseconds(50)) << "\n";
  sleeper.terminate();
  sleeper.join();
  std::cout << "  terminate() -> exitcode " << *sleeper.exitcode() << "\n";

  std::cout << "\n3. Messages carry their type\n";
  std::vector<isola::message> inbox = {isola::message(42), isola::message(std::string("hello")),
                                       isola::message(order{"noodles", 2})};
  for (auto& m : inbox) {
    auto frame = m.to_frame();  // what would cross a pipe
    auto back = isola::message::from_frame(frame);
    back.match([](int i) { std::cout << "  an int: " << i << "\n"; },
               [](const std::string& s) { std::cout << "  a string: " << s << "\n"; },
               [](const isola::message& other) {
                 std::cout << "  something else: " << other.type_name() << "\n";
               });
  }
  try {
    inbox[0].get<std::string>();
  } catch (const isola::type_error& e) {
    std::cout << "  asking an int for a string: " << e.what() << "\n";
  }
  std::cout << "\ndone\n";
}
