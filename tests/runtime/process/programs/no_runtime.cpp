// A program that forgot `isola::runtime rt{argc, argv};`: fork still works,
// spawn is a clear start_method_error (never a hang or a recursive main).
#include <isola/process.hpp>

#include <iostream>

int seven() { return 7; }

int main() {
  isola::process f(seven);
  f.start();
  f.join();
  if (f.exitcode() != 7) return 1;
  isola::process s(isola::process_options{.method = isola::start_method::spawn}, seven);
  try {
    s.start();
  } catch (const isola::start_method_error& e) {
    std::cout << "spawn refused: " << e.what() << "\n";
    return 0;
  }
  return 2;
}
