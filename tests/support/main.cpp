// The main() of every test executable: the runtime first, as in any isola
// program, so that spawn children of a test re-enter here and run their
// target instead of the test suite.
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <isola/runtime.hpp>

bool init_unit_test() { return true; }

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
