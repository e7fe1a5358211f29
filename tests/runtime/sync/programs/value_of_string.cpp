// Must not compile: isola::value<T> and isola::array<T> hold trivially
// copyable types only (their bytes live in shared memory). The ctest
// runtime.value_of_a_string_does_not_compile checks the compiler's message.
#include <string>

#include <isola/array.hpp>
#include <isola/value.hpp>

int main() {
  isola::value<std::string> s{"text"};
  isola::array<std::string> a(3);
  return static_cast<int>(s.load().size() + a.size());
}
