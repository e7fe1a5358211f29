// Uses an installed isola the way a user would: one include, a runtime, a
// child under spawn (the strictest method), a value through the codec.
#include <isola/isola.hpp>

#include <iostream>
#include <string>
#include <vector>

int count_words(std::vector<std::string> words) { return static_cast<int>(words.size()); }

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola::process p(isola::process_options{.method = isola::start_method::spawn}, count_words,
                   std::vector<std::string>{"a", "b", "c"});
  p.start();
  p.join();
  auto round = isola::decode_frame<std::string>(isola::encode_frame(std::string("frame")));
  if (p.exitcode() != 3 || round != "frame") {
    std::cerr << "consumer failed: exitcode " << p.exitcode().value_or(-999) << "\n";
    return 1;
  }
  std::cout << "consumer ok\n";
}
