// multiprocessing-style logging: line format, levels, inheritance by
// children under every start method.
#include <boost/test/unit_test.hpp>

#include <isola/logging.hpp>
#include <isola/process.hpp>

#include <string>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using isola::log_level;
using isola::start_method;

namespace {
void say_hello() { isola::get_logger().warning("hello from the child"); }

struct logger_reset {
  ~logger_reset() {
    isola::get_logger().set_stderr_handler(false);
    isola::get_logger().set_level(log_level::notset);
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(logging)

BOOST_AUTO_TEST_CASE(without_log_to_stderr_nothing_is_printed, *utf::timeout(30)) {
  logger_reset reset;
  isola_test::capture_fd err(2);
  isola::get_logger().critical("should not appear");
  BOOST_TEST(err.text().empty());
}

BOOST_AUTO_TEST_CASE(lines_carry_level_and_process_name_as_python_prints_them, *utf::timeout(30)) {
  logger_reset reset;
  isola_test::capture_fd err(2);
  auto& log = isola::log_to_stderr(log_level::debug);
  log.debug("one");
  log.subdebug("hidden below debug");
  log.info("two");
  log.log(log_level::subwarning, "three");
  BOOST_TEST(err.text() ==
             "[DEBUG/MainProcess] one\n[INFO/MainProcess] two\n[SUBWARNING/MainProcess] three\n");
}

BOOST_AUTO_TEST_CASE(a_logger_at_notset_prints_warnings_and_above, *utf::timeout(30)) {
  logger_reset reset;
  isola_test::capture_fd err(2);
  auto& log = isola::log_to_stderr();
  log.info("no");
  log.warning("yes");
  BOOST_TEST(err.text() == "[WARNING/MainProcess] yes\n");
}

BOOST_AUTO_TEST_CASE(children_log_their_life_at_info_under_every_method, *utf::timeout(60)) {
  logger_reset reset;
  isola::log_to_stderr(log_level::info);
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola_test::capture_fd err(2);
      isola::process p(isola::process_options{.name = "w", .method = m}, say_hello);
      p.start();
      p.join();
      auto text = err.text();
      BOOST_TEST(text ==
                     "[INFO/w] child process calling self.run()\n"
                     "[WARNING/w] hello from the child\n"
                     "[INFO/w] process shutting down\n"
                     "[INFO/w] process exiting with exitcode 0\n",
                 text);
    }
  }
}

BOOST_AUTO_TEST_CASE(children_inherit_the_level_under_every_method, *utf::timeout(60)) {
  logger_reset reset;
  isola::log_to_stderr(log_level::warning);
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola_test::capture_fd err(2);
      isola::process p(isola::process_options{.name = "w", .method = m}, say_hello);
      p.start();
      p.join();
      BOOST_TEST(err.text() == "[WARNING/w] hello from the child\n");
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
