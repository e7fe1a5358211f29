// isola::popen: external programs with piped, redirected or inherited
// streams; communicate without deadlock; timeouts, signals, errors from the
// constructor; no zombie and no descriptor left behind. The programs are the
// system's own (sh, cat, echo, env...).
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <isola/popen.hpp>
#include <isola/process.hpp>
#include <isola/wait.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::stdio;
using clk = std::chrono::steady_clock;

namespace {

const isola::popen_options piped_out{.out = stdio::pipe};
const isola::popen_options piped_all{.in = stdio::pipe, .out = stdio::pipe, .err = stdio::pipe};

int open_fd_count() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (::readdir(d)) ++n;
  ::closedir(d);
  return n;  // includes ".", ".." and the directory's own descriptor
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  unsigned x = seed;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 16);
  }
  return s;
}

/// A directory under /tmp, removed (with the files made in it) at the end.
struct temp_dir {
  std::string path;
  temp_dir() {
    char t[] = "/tmp/isola-popen-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~temp_dir() { (void)!std::system(("rm -rf " + path).c_str()); }
};

void block_forever() {
  for (;;) ::pause();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(popen_suite)

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_vector_of_arguments_runs_the_program_with_them, *utf::timeout(20)) {
  isola::popen p({"echo", "Hello", "two words"}, piped_out);
  BOOST_TEST(p.pid() > 0);
  auto [out, err] = p.communicate();
  BOOST_TEST(out == "Hello two words\n");
  BOOST_TEST(err == "");
  BOOST_TEST(p.returncode() == std::optional<int>(0));
  BOOST_TEST(p.args() == (std::vector<std::string>{"echo", "Hello", "two words"}));
}

BOOST_AUTO_TEST_CASE(a_command_string_is_split_like_shlex, *utf::timeout(20)) {
  isola::popen p(R"(printf '%s|' 'a b' "c \"d\"" e\ f '')", piped_out);
  BOOST_TEST(p.communicate().out == R"(a b|c "d"|e f||)");
  BOOST_TEST(p.args() == (std::vector<std::string>{"printf", "%s|", "a b", "c \"d\"", "e f", ""}));
}

BOOST_AUTO_TEST_CASE(shlex_split_follows_python, *utf::timeout(10)) {
  using v = std::vector<std::string>;
  BOOST_TEST(isola::shlex_split(R"(echo "Hello World")") == (v{"echo", "Hello World"}));
  BOOST_TEST(isola::shlex_split("D:/test/1.py # test") == (v{"D:/test/1.py", "#", "test"}));
  BOOST_TEST(isola::shlex_split("D:/test/1.py # test", true) == (v{"D:/test/1.py"}));
  BOOST_TEST(isola::shlex_split(R"(D:\test\1.py)") == (v{"D:test1.py"}));
  BOOST_TEST(isola::shlex_split("a#b c", true) == (v{"a"}));
  BOOST_TEST(isola::shlex_split("a # x\nb", true) == (v{"a", "b"}));
  BOOST_TEST(isola::shlex_split("  a\t\tb \n c  ") == (v{"a", "b", "c"}));
  BOOST_TEST(isola::shlex_split("") == v{});
  BOOST_TEST(isola::shlex_split("'' \"\"") == (v{"", ""}));
  BOOST_TEST(isola::shlex_split(R"(a"b c"d)") == (v{"ab cd"}));
  BOOST_TEST(isola::shlex_split(R"('a\b' "a\b" "a\\b" "a\"b" a\\b)") ==
             (v{R"(a\b)", R"(a\b)", R"(a\b)", R"(a"b)", R"(a\b)"}));
  BOOST_TEST(isola::shlex_split(R"("$HOME" '$HOME')") == (v{"$HOME", "$HOME"}));
  BOOST_TEST(isola::shlex_split("a\\ b") == (v{"a b"}));
  BOOST_TEST(isola::shlex_split("'it'\\''s'") == (v{"it's"}));
  BOOST_CHECK_THROW(isola::shlex_split("echo 'unterminated"), isola::value_error);
  BOOST_CHECK_THROW(isola::shlex_split("echo \"unterminated"), isola::value_error);
  BOOST_CHECK_THROW(isola::shlex_split("echo trailing\\"), isola::value_error);
  BOOST_CHECK_THROW(isola::shlex_split("echo \"x\\"), isola::value_error);
}

BOOST_AUTO_TEST_CASE(shlex_quote_and_join_round_trip_through_split, *utf::timeout(10)) {
  BOOST_TEST(isola::shlex_quote("") == "''");
  BOOST_TEST(isola::shlex_quote("safe/path-1.txt") == "safe/path-1.txt");
  BOOST_TEST(isola::shlex_quote("it's") == R"('it'"'"'s')");
  std::vector<std::string> words{"a b", "", "it's", "\"q\"", "x\\y", "$HOME", "#c", "新"};
  BOOST_TEST(isola::shlex_split(isola::shlex_join(words)) == words);
}

BOOST_AUTO_TEST_CASE(an_unterminated_quote_is_a_value_error_and_nothing_runs, *utf::timeout(10)) {
  BOOST_CHECK_THROW(isola::popen("echo 'oops"), isola::value_error);
  BOOST_CHECK_THROW(isola::popen(std::vector<std::string>{}), isola::value_error);
  BOOST_CHECK_THROW(isola::popen("   "), isola::value_error);
}

BOOST_AUTO_TEST_CASE(shell_true_runs_the_string_through_sh, *utf::timeout(20)) {
  isola::popen p("echo $((1 + 2)) | tr 3 x; exit 4", {.out = stdio::pipe, .shell = true});
  BOOST_TEST(p.communicate().out == "x\n");
  BOOST_TEST(p.returncode() == std::optional<int>(4));
  BOOST_TEST(p.args() ==
             (std::vector<std::string>{"/bin/sh", "-c", "echo $((1 + 2)) | tr 3 x; exit 4"}));
  // A vector: the script, then $0, $1...
  isola::popen q({"echo \"$0:$1\"", "zero", "one"}, {.out = stdio::pipe, .shell = true});
  BOOST_TEST(q.communicate().out == "zero:one\n");
}

BOOST_AUTO_TEST_CASE(without_shell_metacharacters_are_plain_arguments, *utf::timeout(20)) {
  isola::popen p("echo $HOME | x", piped_out);
  BOOST_TEST(p.communicate().out == "$HOME | x\n");
}

BOOST_AUTO_TEST_CASE(executable_replaces_the_program_but_not_argv0, *utf::timeout(20)) {
  isola::popen p({"my-name", "-c", "echo $0"}, {.out = stdio::pipe, .executable = "/bin/sh"});
  BOOST_TEST(p.communicate().out == "my-name\n");
}

// ---------------------------------------------------------------------------
// Errors from the constructor
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_missing_program_is_an_os_error_naming_it, *utf::timeout(20)) {
  try {
    isola::popen p({"isola-no-such-program", "x"});
    BOOST_FAIL("no exception");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == ENOENT);
    std::string what = e.what();
    BOOST_TEST(what.find("'isola-no-such-program'") != std::string::npos, what);
    BOOST_TEST(what.find("No such file or directory") != std::string::npos, what);
    BOOST_TEST(what.find("PATH=") != std::string::npos, what);
  }
  try {
    isola::popen p("/nonexistent/dir/prog");
    BOOST_FAIL("no exception");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == ENOENT);
    BOOST_TEST(std::string(e.what()).find("/nonexistent/dir/prog") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_executable_is_eacces, *utf::timeout(20)) {
  isola_test::temp_file f;
  isola_test::write_file(f.path(), "#!/bin/sh\necho hi\n");
  ::chmod(f.path().c_str(), 0644);
  if (::geteuid() == 0 && ::access(f.path().c_str(), X_OK) == 0) return;  // root may run anything
  try {
    isola::popen p({f.path()});
    BOOST_FAIL("no exception");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == EACCES);
    BOOST_TEST(std::string(e.what()).find(f.path()) != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_bad_cwd_is_an_os_error_naming_the_directory, *utf::timeout(20)) {
  try {
    isola::popen p({"pwd"}, {.cwd = "/isola/no/such/dir"});
    BOOST_FAIL("no exception");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == ENOENT);
    std::string what = e.what();
    BOOST_TEST(what.find("'/isola/no/such/dir'") != std::string::npos, what);
    BOOST_TEST(what.find("'pwd'") != std::string::npos, what);
  }
}

BOOST_AUTO_TEST_CASE(failed_starts_leave_no_zombie_and_no_descriptor, *utf::timeout(30)) {
  int before = open_fd_count();
  for (int i = 0; i < 20; ++i) {
    BOOST_CHECK_THROW(isola::popen({"isola-no-such-program"}, piped_all), isola::os_error);
    BOOST_CHECK_THROW(isola::popen({"true"}, {.out = stdio::pipe, .cwd = "/isola/none"}),
                      isola::os_error);
  }
  BOOST_TEST(open_fd_count() == before);
  // Each failed child was reaped by the constructor: no zombie is left.
  siginfo_t si{};
  int r = ::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
  int e = errno;
  BOOST_TEST((r == 0 ? si.si_pid == 0 : e == ECHILD));
}

BOOST_AUTO_TEST_CASE(misused_redirections_are_value_errors, *utf::timeout(10)) {
  BOOST_CHECK_THROW(isola::popen({"true"}, {.out = stdio::to_stdout}), isola::value_error);
  BOOST_CHECK_THROW(isola::popen({"true"}, {.in = stdio::to_stdout}), isola::value_error);
  BOOST_CHECK_THROW(isola::popen({"true"}, {.pass_fds = {1}}), isola::value_error);
  BOOST_CHECK_THROW(isola::popen({"true"}, {.out = stdio::fd(987)}), isola::os_error);
  BOOST_CHECK_THROW(isola::popen({"true"}, {.env_update = {{"A=B", "1"}}}), isola::value_error);
  isola::popen p({"true"});
  BOOST_CHECK_THROW(p.in(), isola::value_error);
  BOOST_CHECK_THROW(p.out(), isola::value_error);
  BOOST_CHECK_THROW(p.communicate("input"), isola::value_error);
  BOOST_TEST(p.wait() == 0);
}

// ---------------------------------------------------------------------------
// cwd and environment
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(cwd_sets_the_working_directory_and_relative_programs_resolve_there,
                     *utf::timeout(20)) {
  temp_dir d;
  isola::popen p({"pwd"}, {.out = stdio::pipe, .cwd = d.path});
  BOOST_TEST(p.communicate().out == d.path + "\n");
  isola_test::write_file(d.path + "/hello.sh", "#!/bin/sh\necho hello from $(pwd)\n");
  ::chmod((d.path + "/hello.sh").c_str(), 0755);
  isola::popen q({"./hello.sh"}, {.out = stdio::pipe, .cwd = d.path});
  BOOST_TEST(q.communicate().out == "hello from " + d.path + "\n");
}

BOOST_AUTO_TEST_CASE(env_replaces_the_whole_environment, *utf::timeout(20)) {
  // No PATH in it: the program is looked up in Python's default /bin:/usr/bin.
  isola::popen p({"env"},
                 {.out = stdio::pipe, .env = std::map<std::string, std::string>{{"ONLY", "1"}}});
  BOOST_TEST(p.communicate().out == "ONLY=1\n");
  isola::popen q({"env"}, {.out = stdio::pipe, .env = std::map<std::string, std::string>{}});
  BOOST_TEST(q.communicate().out == "");
}

BOOST_AUTO_TEST_CASE(env_update_extends_or_overrides_the_callers_environment, *utf::timeout(20)) {
  ::setenv("ISOLA_POPEN_KEEP", "kept", 1);
  ::setenv("ISOLA_POPEN_OVER", "old", 1);
  isola::popen p(
      {"sh", "-c", "echo $ISOLA_POPEN_KEEP $ISOLA_POPEN_OVER $test_id"},
      {.out = stdio::pipe, .env_update = {{"ISOLA_POPEN_OVER", "new"}, {"test_id", "1"}}});
  BOOST_TEST(p.communicate().out == "kept new 1\n");
  // On top of a replaced environment, too.
  isola::popen q({"env"}, {.out = stdio::pipe,
                           .env = std::map<std::string, std::string>{{"A", "1"}},
                           .env_update = {{"B", "2"}}});
  BOOST_TEST(q.communicate().out == "A=1\nB=2\n");
  ::unsetenv("ISOLA_POPEN_KEEP");
  ::unsetenv("ISOLA_POPEN_OVER");
}

BOOST_AUTO_TEST_CASE(the_program_is_looked_up_in_the_childs_path, *utf::timeout(20)) {
  temp_dir d;
  isola_test::write_file(d.path + "/isola-only-here", "#!/bin/sh\necho found me\n");
  ::chmod((d.path + "/isola-only-here").c_str(), 0755);
  isola::popen p({"isola-only-here"},
                 {.out = stdio::pipe, .env_update = {{"PATH", d.path + ":/usr/bin:/bin"}}});
  BOOST_TEST(p.communicate().out == "found me\n");
  BOOST_CHECK_THROW(isola::popen({"isola-only-here"}), isola::os_error);
}

// ---------------------------------------------------------------------------
// Redirections
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(stdin_devnull_reads_end_of_file_at_once, *utf::timeout(20)) {
  isola::popen p({"cat"}, {.in = stdio::devnull, .out = stdio::pipe});
  BOOST_TEST(p.communicate({}, 10s).out == "");
  BOOST_TEST(p.returncode() == std::optional<int>(0));
}

BOOST_AUTO_TEST_CASE(stderr_to_stdout_merges_both_into_one_pipe, *utf::timeout(20)) {
  isola::popen p({"sh", "-c", "echo out; echo err >&2; echo out2"},
                 {.out = stdio::pipe, .err = stdio::to_stdout});
  auto [out, err] = p.communicate();
  BOOST_TEST(out == "out\nerr\nout2\n");
  BOOST_TEST(err == "");
  BOOST_CHECK_THROW(p.err(), isola::value_error);
}

BOOST_AUTO_TEST_CASE(stdout_and_stderr_go_to_separate_pipes_or_devnull, *utf::timeout(20)) {
  isola::popen p({"sh", "-c", "echo out; echo err >&2"}, {.out = stdio::pipe, .err = stdio::pipe});
  auto [out, err] = p.communicate();
  BOOST_TEST(out == "out\n");
  BOOST_TEST(err == "err\n");
  isola::popen q({"sh", "-c", "echo out; echo err >&2"},
                 {.out = stdio::devnull, .err = stdio::pipe});
  auto r = q.communicate();
  BOOST_TEST(r.out == "");
  BOOST_TEST(r.err == "err\n");
}

BOOST_AUTO_TEST_CASE(a_descriptor_can_be_the_childs_stream, *utf::timeout(20)) {
  isola_test::temp_file f;
  int fd = ::open(f.path().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  {
    isola::popen p({"echo", "into the file"}, {.out = stdio::fd(fd)});
    BOOST_TEST(p.wait() == 0);
  }
  ::close(fd);
  BOOST_TEST(f.read() == "into the file\n");
  // Swapped standard descriptors work too: stdout to the caller's fd 2.
  isola_test::capture_fd cap(2);
  isola::popen q({"sh", "-c", "echo to-err"}, {.out = stdio::fd(2), .err = stdio::devnull});
  BOOST_TEST(q.wait() == 0);
  BOOST_TEST(cap.text() == "to-err\n");
}

BOOST_AUTO_TEST_CASE(only_pass_fds_are_inherited, *utf::timeout(20)) {
  int p[2];
  BOOST_REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  int passed = ::fcntl(p[1], F_DUPFD_CLOEXEC, 40);
  int leaky = ::fcntl(p[1], F_DUPFD, 50);  // not close-on-exec: the child must still not get it
  // (dash redirects only descriptors 0-9 with >&N: go through /proc instead)
  std::string script = "echo passed > /proc/self/fd/" + std::to_string(passed) +
                       "; test -e /proc/self/fd/" + std::to_string(leaky) +
                       " && echo leaked || echo closed";
  {
    isola::popen c({"sh", "-c", script}, {.out = stdio::pipe, .pass_fds = {passed}});
    BOOST_TEST(c.communicate().out == "closed\n");
  }
  ::close(p[1]);
  ::close(passed);
  ::close(leaky);
  char buf[64] = {};
  auto n = ::read(p[0], buf, sizeof buf);
  ::close(p[0]);
  BOOST_TEST(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "passed\n");
}

BOOST_AUTO_TEST_CASE(start_new_session_makes_the_child_a_session_leader, *utf::timeout(20)) {
  isola::popen p({"sh", "-c", "exec cut -d' ' -f6 /proc/self/stat"},
                 {.out = stdio::pipe, .start_new_session = true});
  BOOST_TEST(p.communicate().out == std::to_string(p.pid()) + "\n");
}

// ---------------------------------------------------------------------------
// communicate
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(sixty_four_mib_go_through_cat_and_back, *utf::timeout(120)) {
  auto data = pattern(64u << 20, 7);
  isola::popen p({"cat"}, {.in = stdio::pipe, .out = stdio::pipe});
  auto [out, err] = p.communicate(data, 60s);
  BOOST_TEST(out.size() == data.size());
  BOOST_TEST((out == data));
  BOOST_TEST(p.returncode() == std::optional<int>(0));
}

BOOST_AUTO_TEST_CASE(large_stdout_and_stderr_at_once_do_not_deadlock, *utf::timeout(120)) {
  // Both streams far beyond a pipe's 64 KiB, written concurrently.
  isola::popen p({"sh", "-c",
                  "head -c 16777216 /dev/zero | tr '\\0' a & head -c 12582912 /dev/zero | tr '\\0' "
                  "b >&2; wait"},
                 {.out = stdio::pipe, .err = stdio::pipe});
  auto [out, err] = p.communicate({}, 60s);
  BOOST_TEST(out.size() == 16777216u);
  BOOST_TEST(err.size() == 12582912u);
  BOOST_TEST(out.find_first_not_of('a') == std::string::npos);
  BOOST_TEST(err.find_first_not_of('b') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(input_is_written_while_a_large_stderr_is_read, *utf::timeout(120)) {
  // The program fills stderr before it reads a byte of stdin: a caller that
  // wrote all input first would wait for ever.
  auto data = pattern(8u << 20, 3);
  isola::popen p({"sh", "-c", "head -c 4194304 /dev/zero >&2; cat"}, piped_all);
  auto [out, err] = p.communicate(data, 60s);
  BOOST_TEST((out == data));
  BOOST_TEST(err.size() == 4194304u);
}

BOOST_AUTO_TEST_CASE(input_to_a_program_that_stops_reading_is_dropped_quietly, *utf::timeout(30)) {
  isola::popen p({"sh", "-c", "head -c 10; echo; echo done >&2"}, piped_all);
  auto [out, err] = p.communicate(pattern(4u << 20, 1).replace(0, 10, "0123456789"), 20s);
  BOOST_TEST(out == "0123456789\n");
  BOOST_TEST(err == "done\n");
  BOOST_TEST(p.returncode() == std::optional<int>(0));
}

BOOST_AUTO_TEST_CASE(communicate_times_out_and_a_later_call_goes_on, *utf::timeout(30)) {
  isola::popen p({"sh", "-c", "echo first; read line; echo \"got $line\"; echo err >&2"},
                 piped_all);
  BOOST_TEST(p.out().read_line(10s) == std::optional<std::string>("first\n"));
  p.in().write("hello\n");
  // A program that waits for something that does not come.
  auto t0 = clk::now();
  isola::popen q({"sh", "-c", "echo before; exec sleep 30"}, {.out = stdio::pipe});
  BOOST_CHECK_THROW(q.communicate({}, 200ms), isola::timeout_error);
  auto took = clk::now() - t0;
  BOOST_TEST((took >= 200ms));
  BOOST_TEST((took < 5s));
  BOOST_TEST(!q.poll());
  q.kill();
  auto [out, err] = q.communicate({}, 10s);  // Python's kill(); communicate() idiom
  BOOST_TEST(out == "before\n");             // read before the timeout, kept for this call
  BOOST_TEST(q.returncode() == std::optional<int>(-SIGKILL));
  // The first program: its output already has the line we read.
  auto r = p.communicate({}, 10s);
  BOOST_TEST(r.out == "got hello\n");
  BOOST_TEST(r.err == "err\n");
}

BOOST_AUTO_TEST_CASE(input_left_by_a_timed_out_communicate_is_sent_by_the_next, *utf::timeout(60)) {
  // The program reads nothing for a while: 2 MiB cannot fit in the pipe.
  auto data = pattern(2u << 20, 9);
  isola::popen p({"sh", "-c", "read go; cat"}, {.in = stdio::pipe, .out = stdio::pipe});
  std::string with_go = "go\n" + data;
  // A first call that cannot finish: `read go` consumes its line, then cat
  // echoes the rest; the output pipe is read meanwhile, so only time limits it.
  std::optional<isola::popen::output> got;
  try {
    got = p.communicate(with_go, 1ms);
  } catch (const isola::timeout_error&) {}
  if (!got) {
    BOOST_CHECK_THROW(p.communicate("more"), isola::value_error);  // Python: no new input
    got = p.communicate({}, 30s);
  }
  BOOST_TEST(got->out.size() == data.size());
  BOOST_TEST((got->out == data));
}

BOOST_AUTO_TEST_CASE(try_communicate_never_blocks, *utf::timeout(30)) {
  isola::popen p({"sh", "-c", "read x; echo \"[$x]\""}, {.in = stdio::pipe, .out = stdio::pipe});
  auto t0 = clk::now();
  auto r = p.try_communicate("abc\n");  // writes, closes stdin, takes what is there
  BOOST_TEST((clk::now() - t0 < 2s));
  auto deadline = clk::now() + 10s;
  while (!r && !(r = p.try_communicate()) && clk::now() < deadline) {
    pollfd f{p.sentinel(), POLLIN, 0};
    ::poll(&f, 1, 10);  // wait for the program's end, not a fixed sleep
  }
  BOOST_REQUIRE(r);
  BOOST_TEST(r->out == "[abc]\n");
}

BOOST_AUTO_TEST_CASE(the_output_is_returned_once, *utf::timeout(20)) {
  isola::popen p({"echo", "Hello"}, {.out = stdio::pipe, .err = stdio::to_stdout});
  BOOST_TEST(p.communicate().out == "Hello\n");
  BOOST_CHECK_THROW(p.communicate(), isola::value_error);  // Python: read of closed file
  // Without pipes there is nothing to return twice: communicate just waits.
  isola::popen q({"true"});
  BOOST_TEST(q.communicate().out == "");
  BOOST_TEST(q.communicate().out == "");
  BOOST_TEST(q.returncode() == std::optional<int>(0));
}

// ---------------------------------------------------------------------------
// The pipe ends
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_pipe_ends_talk_line_by_line, *utf::timeout(20)) {
  isola::popen p({"cat"}, {.in = stdio::pipe, .out = stdio::pipe});
  p.in().write("one\ntwo\n");
  BOOST_TEST(p.out().read_line(10s) == std::optional<std::string>("one\n"));
  BOOST_TEST(p.out().read_line() == std::optional<std::string>("two\n"));
  BOOST_TEST(!p.out().try_read_line());
  BOOST_TEST(!p.out().at_eof());
  p.in().write("thr", 10s);
  BOOST_TEST(p.in().try_write("ee") == 2u);
  p.in().close();
  BOOST_TEST(p.in().closed());
  BOOST_TEST(p.out().read_line() == std::optional<std::string>("three"));  // no '\n' at the end
  BOOST_TEST(!p.out().read_line());
  BOOST_TEST(p.out().at_eof());
  BOOST_TEST(p.wait() == 0);
}

BOOST_AUTO_TEST_CASE(read_returns_everything_up_to_end_of_file, *utf::timeout(20)) {
  isola::popen p({"sh", "-c", "printf 'a\\nb\\n'; sleep 0.05; printf c"}, piped_out);
  BOOST_TEST(p.out().read_line() == std::optional<std::string>("a\n"));
  BOOST_TEST(p.out().read(10s) == "b\nc");
  BOOST_TEST(p.wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(timed_reads_throw_timeout_error_and_keep_the_data, *utf::timeout(30)) {
  isola::popen p({"sh", "-c", "printf partial; exec sleep 30"}, piped_out);
  auto t0 = clk::now();
  BOOST_CHECK_THROW(p.out().read_line(100ms), isola::timeout_error);
  BOOST_CHECK_THROW(p.out().read(100ms), isola::timeout_error);
  BOOST_TEST((clk::now() - t0 < 5s));
  BOOST_TEST(!p.out().try_read_line());
  BOOST_TEST(!p.out().at_eof());
  p.kill();
  BOOST_TEST(p.wait(10s) == -SIGKILL);
  std::string got;
  while (!p.out().at_eof()) got += p.out().try_read();  // the program has ended: EOF is there
  BOOST_TEST(got == "partial");
  BOOST_TEST(p.out().try_read() == "");
}

BOOST_AUTO_TEST_CASE(writing_to_a_program_that_ended_is_epipe_not_death, *utf::timeout(20)) {
  isola::popen p({"true"}, {.in = stdio::pipe});
  BOOST_TEST(p.wait() == 0);
  try {
    p.in().write(std::string(1 << 20, 'x'));
    BOOST_FAIL("no exception");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == EPIPE);
  }
}

BOOST_AUTO_TEST_CASE(a_full_pipe_makes_a_timed_write_time_out, *utf::timeout(20)) {
  isola::popen p({"sleep", "30"}, {.in = stdio::pipe});
  BOOST_CHECK_THROW(p.in().write(std::string(4 << 20, 'x'), 100ms), isola::timeout_error);
  BOOST_TEST(p.in().try_write(std::string(4 << 20, 'x')) < (4u << 20));
  p.kill();
  BOOST_TEST(p.wait() == -SIGKILL);
}

BOOST_AUTO_TEST_CASE(popen_and_its_pipes_work_with_isola_wait, *utf::timeout(20)) {
  isola::popen p({"sh", "-c", "echo line; read x || true"},
                 {.in = stdio::pipe, .out = stdio::pipe});
  auto ready = isola::wait({p.out()}, 10s);
  BOOST_TEST(ready == std::vector<std::size_t>{0});
  BOOST_TEST(isola::wait({p}, 50ms).empty());
  p.in().close();
  BOOST_TEST(isola::wait({p}, 10s) == std::vector<std::size_t>{0});
  BOOST_TEST(p.wait() == 0);
}

// ---------------------------------------------------------------------------
// wait, poll, signals
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(wait_with_a_timeout_throws_and_the_program_runs_on, *utf::timeout(30)) {
  isola::popen p({"sleep", "30"});
  BOOST_TEST(!p.poll());
  BOOST_TEST(!p.returncode());
  auto t0 = clk::now();
  BOOST_CHECK_THROW(p.wait(150ms), isola::timeout_error);
  auto took = clk::now() - t0;
  BOOST_TEST((took >= 150ms));
  BOOST_TEST((took < 5s));
  BOOST_TEST(!p.poll());
  p.terminate();
  BOOST_TEST(p.wait(10s) == -SIGTERM);
  BOOST_TEST(p.returncode() == std::optional<int>(-SIGTERM));
  BOOST_TEST(p.wait() == -SIGTERM);  // again: at once, the same
  p.kill();                          // a no-op once reaped
}

BOOST_AUTO_TEST_CASE(exit_codes_and_signals_become_returncodes, *utf::timeout(30)) {
  isola::popen a({"sh", "-c", "exit 3"});
  BOOST_TEST(a.wait() == 3);
  isola::popen b({"sleep", "30"});
  b.kill();
  BOOST_TEST(b.wait() == -9);
  isola::popen c({"sleep", "30"});
  c.send_signal(SIGUSR1);
  BOOST_TEST(c.wait() == -SIGUSR1);
  isola::popen d({"sh", "-c", "kill -SEGV $$"});
  BOOST_TEST(d.wait() == -SIGSEGV);
}

BOOST_AUTO_TEST_CASE(the_child_starts_with_default_signals_and_an_empty_mask, *utf::timeout(20)) {
  // The caller ignores SIGTERM, catches SIGUSR2 and blocks SIGUSR1: the
  // program must die of SIGUSR1 and SIGUSR2 and keep ignoring SIGTERM.
  auto old_term = ::signal(SIGTERM, SIG_IGN);
  auto old_usr1 = ::signal(SIGUSR1, SIG_DFL);
  auto old_usr2 = ::signal(SIGUSR2, [](int) {});
  sigset_t s, old_mask;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &s, &old_mask);
  isola::popen p({"sleep", "30"});
  isola::popen q({"sleep", "30"});
  isola::popen r({"sleep", "30"});
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::signal(SIGTERM, old_term);
  ::signal(SIGUSR1, old_usr1);
  ::signal(SIGUSR2, old_usr2);
  q.send_signal(SIGUSR1);
  BOOST_TEST(q.wait(10s) == -SIGUSR1);
  r.send_signal(SIGUSR2);
  BOOST_TEST(r.wait(10s) == -SIGUSR2);
  // SIG_IGN is inherited across exec, as with Python (only SIGPIPE/SIGXFSZ are reset).
  p.terminate();
  BOOST_CHECK_THROW(p.wait(100ms), isola::timeout_error);
  p.kill();
  BOOST_TEST(p.wait() == -SIGKILL);
  // SIGPIPE is back to its default: `yes | head` ends.
  isola::popen y("yes | head -n 2", {.out = stdio::pipe, .shell = true});
  BOOST_TEST(y.communicate({}, 10s).out == "y\ny\n");
}

BOOST_AUTO_TEST_CASE(wait_and_poll_from_another_thread_while_communicating, *utf::timeout(30)) {
  isola::popen p({"sh", "-c", "sleep 0.2; echo done"}, piped_out);
  std::optional<int> seen;
  std::thread t([&] { seen = p.wait(); });
  BOOST_TEST(p.communicate({}, 10s).out == "done\n");
  t.join();
  BOOST_TEST(seen == std::optional<int>(0));
}

BOOST_AUTO_TEST_CASE(popens_start_from_many_threads_at_once, *utf::timeout(120)) {
  // vfork from a threaded parent: each child must get its own streams, and
  // no start may see another's error pipe or descriptors.
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &good] {
      for (int i = 0; i < 25; ++i) {
        std::string word = std::to_string(t) + ":" + std::to_string(i);
        try {
          isola::popen p({"cat"}, {.in = stdio::pipe, .out = stdio::pipe});
          if (p.communicate(word, 30s).out == word && p.returncode() == 0) ++good;
          if (i % 5 == 0) isola::popen bad({"isola-no-such-program"});
        } catch (const isola::os_error& e) {
          if (e.code() == ENOENT) ++good;
        }
      }
    });
  for (auto& th : threads) th.join();
  BOOST_TEST(good.load() == 4 * (25 + 5));
}

// ---------------------------------------------------------------------------
// Lifetime: no zombie, no descriptor, no copies in fork children
// ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_destructor_reaps_an_ended_program_at_once, *utf::timeout(20)) {
  int pid;
  {
    isola::popen p({"true"});
    pid = p.pid();
    pollfd f{p.sentinel(), POLLIN, 0};
    BOOST_REQUIRE(::poll(&f, 1, 10000) == 1);  // ended, not yet reaped
  }
  BOOST_TEST(isola_test::pid_gone(pid));
}

BOOST_AUTO_TEST_CASE(the_destructor_leaves_a_running_program_running_and_reaps_it_later,
                     *utf::timeout(30)) {
  int pid;
  isola_test::temp_file f;
  {
    isola::popen p({"sh", "-c", "sleep 0.3; echo finished > " + f.path()});
    pid = p.pid();
  }
  BOOST_TEST(!isola_test::pid_gone(pid));  // still running
  BOOST_TEST(isola_test::wait_until([&] { return isola_test::pid_gone(pid); }, 10s));
  BOOST_TEST(f.read() == "finished\n");  // it ran to its end
}

BOOST_AUTO_TEST_CASE(many_popens_leave_no_descriptor_open, *utf::timeout(60)) {
  int before = open_fd_count();
  for (int i = 0; i < 50; ++i) {
    isola::popen p({"cat"}, piped_all);
    BOOST_TEST(p.communicate("x" + std::to_string(i)).out == "x" + std::to_string(i));
  }
  std::vector<int> pids;
  for (int i = 0; i < 10; ++i) {
    isola::popen p({"sleep", "0.1"}, piped_all);  // dropped while running
    pids.push_back(p.pid());
  }
  BOOST_TEST(isola_test::wait_until(
      [&] {
        for (int pid : pids)
          if (!isola_test::pid_gone(pid)) return false;
        return true;
      },
      10s));
  BOOST_TEST(isola_test::wait_until([&] { return open_fd_count() == before; }, 5s));
}

BOOST_AUTO_TEST_CASE(moved_popens_keep_their_program, *utf::timeout(20)) {
  isola::popen a({"sh", "-c", "read x; echo $x"}, {.in = stdio::pipe, .out = stdio::pipe});
  isola::popen b = std::move(a);
  BOOST_CHECK_THROW(a.pid(), isola::value_error);
  isola::popen c({"true"});
  c = std::move(b);
  BOOST_TEST(c.communicate("moved\n", 10s).out == "moved\n");
}

BOOST_AUTO_TEST_CASE(a_fork_child_does_not_keep_a_popens_stdin_open, *utf::timeout(30)) {
  isola::popen p({"cat"}, {.in = stdio::pipe, .out = stdio::pipe});
  isola::process child(isola::process_options{.method = isola::start_method::fork}, block_forever);
  child.start();  // under fork: it would hold a copy of p's stdin write end
  p.in().write("x");
  p.in().close();
  BOOST_TEST(p.out().read(10s) == "x");  // cat saw EOF although the child lives
  BOOST_TEST(p.wait(10s) == 0);
  child.kill();
  child.join();
}

BOOST_AUTO_TEST_SUITE_END()
