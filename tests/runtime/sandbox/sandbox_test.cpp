// process_options::sandbox on a plain isola::process: what the child runs
// under (no_new_privs, rlimits with hard = soft, no cores), a forbidden call
// is a death by SIGSYS, a file_size limit a death by SIGXFSZ, and a bad
// policy an error of start() in the parent; under every start method.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

#include <isola/error.hpp>
#include <isola/process.hpp>
#include <isola/sandbox.hpp>
#include <isola/start_method.hpp>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;

namespace {

// 0 if the child runs as its sandbox says, else which check failed.
int check_inside() {
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return 10;
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur != 100 || r.rlim_max != 100) return 11;
  ::getrlimit(RLIMIT_CORE, &r);
  if (r.rlim_cur != 0 || r.rlim_max != 0) return 12;
  if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2) return 13;  // SECCOMP_MODE_FILTER
  return 0;
}

int open_for_write(std::string path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  return fd >= 0 ? 0 : 3;
}

int write_past(std::string path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return 3;
  std::string s(8192, 'x');
  for (int i = 0; i < 4; ++i)
    if (::write(fd, s.data(), s.size()) < 0) return 4;
  return 0;
}

isola::process_options boxed(isola::start_method m, isola::sandbox b) {
  isola::process_options o;
  o.method = m;
  o.sandbox = std::move(b);
  return o;
}

int exit_of(isola::process& p) {
  BOOST_REQUIRE(p.join(30s));
  return p.exitcode().value_or(-1000);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sandbox)

BOOST_AUTO_TEST_CASE(the_child_runs_with_no_new_privs_fixed_rlimits_no_cores_and_a_filter,
                     *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << isola::to_string(m)) {
      isola::sandbox b;
      b.syscalls = isola::syscall_policy::compute;
      b.open_files = 100;
      isola::process p(boxed(m, b), check_inside);
      p.start();
      BOOST_TEST(exit_of(p) == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_forbidden_call_kills_the_child_by_sigsys, *utf::timeout(60)) {
  isola_test::temp_file f;
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << isola::to_string(m)) {
      isola::sandbox b;
      b.syscalls = isola::syscall_policy::compute;
      isola::process p(boxed(m, b), open_for_write, f.path());
      p.start();
      BOOST_TEST(exit_of(p) == -SIGSYS);
      isola::process q(boxed(m, isola::sandbox{}), open_for_write, f.path());  // the control
      q.start();
      BOOST_TEST(exit_of(q) == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_write_past_file_size_kills_the_child_by_sigxfsz, *utf::timeout(60)) {
  isola_test::temp_file f;
  isola::sandbox b;
  b.file_size = 4096;
  isola::process p(boxed(isola::start_method::forkserver, b), write_past, f.path());
  p.start();
  BOOST_TEST(exit_of(p) == -SIGXFSZ);
}

BOOST_AUTO_TEST_CASE(a_bad_policy_is_an_error_of_start_in_the_parent, *utf::timeout(30)) {
  isola::sandbox b;
  b.syscalls = isola::syscall_policy::compute;
  b.deny = {"not_a_syscall"};
  isola::process p(boxed(isola::start_method::forkserver, b), check_inside);
  BOOST_CHECK_THROW(p.start(), isola::value_error);
  isola::sandbox z;
  z.open_files = 0;
  isola::process q(boxed(isola::start_method::forkserver, z), check_inside);
  BOOST_CHECK_THROW(q.start(), isola::value_error);
}

BOOST_AUTO_TEST_SUITE_END()
