// isola::pipe and isola::connection: typed and raw messages, EOF, closed
// peers, simplex ends (real pipes) and SIGPIPE, large messages streamed with a
// trailing checksum, oversize and corrupt input, descriptor passing, and
// ends passed to children under every start method.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <isola/connection.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>
#include <isola/wait.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::start_method;

namespace {

std::vector<std::byte> as_bytes(std::string_view s) {
  auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

// Child: receives ints until -1, answers each with its double, then sends "bye".
void doubler(isola::connection c) {
  for (;;) {
    int v = c.recv<int>();
    if (v == -1) break;
    c.send(v * 2);
  }
  c.send(std::string("bye"));
}

// Child: sends three messages then a None-like end marker (Python's seed 002).
void producer(isola::connection c) {
  for (int i = 0; i < 3; ++i) c.send(std::string("item ") + std::to_string(i));
  c.send(std::string());  // end-of-stream marker
}

int recv_handle_and_write(isola::connection c) {
  int fd = c.recv_handle();
  const char msg[] = "written by the child";
  auto n = ::write(fd, msg, sizeof msg - 1);
  ::close(fd);
  return n == static_cast<ssize_t>(sizeof msg - 1) ? 0 : 1;
}

int count_until_eof(isola::connection r) {
  int n = 0;
  try {
    for (;;) {
      r.recv<int>();
      ++n;
    }
  } catch (const isola::eof_error&) {}
  return n;
}

void block_forever() {
  for (;;) ::pause();
}

bool is_fifo(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

// Bytes whose value depends on their position and on seed.
std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

// Around and above the size from which send_bytes streams a payload with its
// checksum after it (1 MiB), and below.
const std::vector<std::size_t> large_sizes = {(1u << 20) - 1, 1u << 20, (1u << 20) + 7, 5u << 20,
                                              1000};

// Child: for each size, a pattern message and a small one after it.
void send_large_then_small(isola::connection c) {
  for (std::size_t i = 0; i < large_sizes.size(); ++i) {
    c.send_bytes(pattern(large_sizes[i], static_cast<unsigned>(i)));
    c.send(static_cast<int>(i));
  }
}

// Child: writes to a simplex pipe until the write fails; 0 if it failed with
// EPIPE (the process was not killed by SIGPIPE), 2 otherwise.
int send_until_epipe(isola::connection w) {
  try {
    for (;;) w.send_bytes(std::vector<std::byte>(4096));
  } catch (const isola::os_error& e) {
    return e.code() == EPIPE ? 0 : 2;
  }
}

int sigpipe_disposition_is_ignore() {
  struct sigaction old {};
  ::sigaction(SIGPIPE, nullptr, &old);
  return old.sa_handler == SIG_IGN ? 0 : 3;
}

// Restores SIGPIPE's disposition at the end of a scope.
class sigpipe_guard {
 public:
  sigpipe_guard() { ::sigaction(SIGPIPE, nullptr, &saved_); }
  ~sigpipe_guard() { ::sigaction(SIGPIPE, &saved_, nullptr); }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  struct sigaction saved_ {};
};

// A frame as a streamed send_bytes writes it (see connection.cpp): "ISLT",
// a CRC-32C of (tag, size), tag, size, the payload, then the CRC-32C of
// (tag, size, payload).
std::vector<std::byte> streamed_frame(std::span<const std::byte> payload) {
  isola::frame_header h;
  h.magic = 0x544c5349;  // "ISLT"
  h.tag = isola::type_tag<isola::raw_bytes_tag>();
  h.size = payload.size();
  std::uint64_t head[2] = {h.tag, h.size};
  h.crc = isola::crc32c(std::as_bytes(std::span(head)));
  std::uint32_t trailer = isola::crc32c(payload, h.crc);
  std::vector<std::byte> f(sizeof h + payload.size() + sizeof trailer);
  std::memcpy(f.data(), &h, sizeof h);
  std::memcpy(f.data() + sizeof h, payload.data(), payload.size());
  std::memcpy(f.data() + sizeof h + payload.size(), &trailer, sizeof trailer);
  return f;
}

void write_raw(int fd, std::span<const std::byte> b) {
  BOOST_REQUIRE(::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size()));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(connection)

BOOST_AUTO_TEST_CASE(typed_messages_arrive_whole_and_in_order, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  a.send(1);
  a.send(std::string("hello"));
  a.send(std::map<std::string, std::vector<int>>{{"x", {1, 2}}});
  b.send(3.5);
  BOOST_TEST(b.recv<int>() == 1);
  BOOST_TEST(b.recv<std::string>() == "hello");
  BOOST_TEST((b.recv<std::map<std::string, std::vector<int>>>().at("x") == std::vector<int>{1, 2}));
  BOOST_TEST(a.recv<double>() == 3.5);
  a.send(42);
  auto m = b.recv();  // any type
  BOOST_TEST(m.is<int>());
  BOOST_TEST(m.get<int>() == 42);
}

BOOST_AUTO_TEST_CASE(a_wrong_type_is_a_type_error_and_the_message_is_not_lost, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  a.send(std::string("not an int"));
  try {
    b.recv<int>();
    BOOST_FAIL("recv<int> of a string did not throw");
  } catch (const isola::type_error& e) {
    std::string what = e.what();
    BOOST_TEST(what.find("int32") != std::string::npos, what);
    BOOST_TEST(what.find("string") != std::string::npos, what);
  }
  BOOST_TEST(b.poll());
  BOOST_TEST(b.recv<std::string>() == "not an int");
}

BOOST_AUTO_TEST_CASE(eof_after_every_copy_of_the_other_end_is_closed, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [reader, writer] = isola::pipe();
      isola::process p(isola::process_options{.method = m}, producer, std::move(writer));
      p.start();  // the writer moved into p's arguments; start() drops the parent's copy
      p.join();
      std::vector<std::string> got;
      for (;;) {
        auto s = reader.recv<std::string>();
        if (s.empty()) break;
        got.push_back(s);
      }
      BOOST_TEST(got.size() == 3u);
      BOOST_TEST(got[2] == "item 2");
      BOOST_CHECK_THROW(reader.recv<std::string>(), isola::eof_error);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_child_holds_only_the_pipe_ends_it_was_given, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      // The writer stays in the parent; under fork the child's copy of it
      // must be closed, or the child's reader would never see EOF.
      auto [writer, reader] = isola::pipe();
      auto [unrelated, unrelated_peer] = isola::pipe();
      isola::process p(isola::process_options{.method = m}, count_until_eof, std::move(reader));
      p.start();
      for (int i = 0; i < 5; ++i) writer.send(i);
      writer.close();
      BOOST_TEST(p.join(20s));
      BOOST_TEST(p.exitcode() == 5);
    }
  }
}

BOOST_AUTO_TEST_CASE(under_fork_a_connection_not_given_is_closed_in_the_child_not_dangling,
                     *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  // The child can reach `a` through the capture, but was not given it.
  isola::process p(isola::process_options{.method = start_method::fork},
                   [&a] { return a.closed() ? 0 : 1; });
  p.start();
  p.join();
  BOOST_TEST(p.exitcode() == 0);
  BOOST_TEST(!a.closed());  // the parent's end is untouched
  a.send(1);
  BOOST_TEST(b.recv<int>() == 1);
}

BOOST_AUTO_TEST_CASE(recv_throws_eof_error_once_the_peer_is_closed, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  a.send(7);
  a.close();
  BOOST_TEST(a.closed());
  BOOST_TEST(b.recv<int>() == 7);  // buffered messages first
  BOOST_CHECK_THROW(b.recv<int>(), isola::eof_error);
  BOOST_CHECK_THROW(b.recv<int>(), isola::eof_error);
}

BOOST_AUTO_TEST_CASE(sending_to_a_closed_peer_is_an_error_not_a_sigpipe_death, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  b.close();
  try {
    a.send(1);
    a.send(std::vector<char>(1 << 20));  // whatever the kernel buffers, this cannot fit
    BOOST_FAIL("send to a closed peer did not throw");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == EPIPE);
  }
  BOOST_CHECK_THROW(a.send_bytes("x"), isola::os_error);
}

BOOST_AUTO_TEST_CASE(a_simplex_pipe_refuses_the_wrong_direction, *utf::timeout(30)) {
  auto [r, w] = isola::pipe(false);
  BOOST_TEST(r.readable());
  BOOST_TEST(!r.writable());
  BOOST_TEST(w.writable());
  BOOST_TEST(!w.readable());
  BOOST_CHECK_THROW(r.send(1), isola::value_error);
  BOOST_CHECK_THROW(w.recv<int>(), isola::value_error);
  w.send(5);
  BOOST_TEST(r.recv<int>() == 5);
}

BOOST_AUTO_TEST_CASE(a_simplex_pipe_is_a_real_pipe_with_the_same_semantics, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [r, w] = isola::pipe(false);
      BOOST_TEST(is_fifo(r.fileno()));
      BOOST_TEST(is_fifo(w.fileno()));
      BOOST_TEST(!r.poll());
      BOOST_TEST(isola::wait({r}, 0s).empty());
      // The writer goes to a child: messages small and large, then EOF.
      isola::process p(isola::process_options{.method = m}, send_large_then_small, std::move(w));
      p.start();
      BOOST_TEST(r.poll(10s));
      BOOST_TEST((isola::wait({r}, 10s) == std::vector<std::size_t>{0}));
      for (std::size_t i = 0; i < large_sizes.size(); ++i) {
        BOOST_TEST_CONTEXT("size " << large_sizes[i]) {
          BOOST_TEST((r.recv_bytes() == pattern(large_sizes[i], static_cast<unsigned>(i))));
          BOOST_TEST(r.recv<int>() == static_cast<int>(i));
        }
      }
      BOOST_CHECK_THROW(r.recv<int>(), isola::eof_error);
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
  // Descriptors need a socket: a simplex pipe refuses them, as in Python.
  auto [r, w] = isola::pipe(false);
  BOOST_CHECK_THROW(w.send_handle(0), isola::value_error);
  BOOST_CHECK_THROW(r.recv_handle(), isola::value_error);
  // A connection adopted from a raw pipe descriptor works like one from pipe(false).
  int fds[2];
  BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  isola::connection ar(fds[0], true, false), aw(fds[1], false, true);
  aw.send(std::string("adopted"));
  BOOST_TEST(ar.recv<std::string>() == "adopted");
}

BOOST_AUTO_TEST_CASE(sigpipe_never_kills_a_sender_on_a_simplex_pipe_whose_reader_is_closed,
                     *utf::timeout(60)) {
  sigpipe_guard restore;
  for (auto m : isola::all_start_methods()) {
    for (bool default_in_parent : {false, true}) {
      // Under fork the child has only the parent's disposition: a parent that
      // sets SIGPIPE back to its default after making the pipe asked for it.
      if (default_in_parent && m == start_method::fork) continue;
      BOOST_TEST_CONTEXT("start method "
                         << m << ", SIGPIPE default in the parent: " << default_in_parent) {
        auto [r, w] = isola::pipe(false);
        BOOST_TEST(sigpipe_disposition_is_ignore() == 0);  // making a write end did it
        if (default_in_parent) ::signal(SIGPIPE, SIG_DFL);
        isola::process p(isola::process_options{.method = m}, send_until_epipe, std::move(w));
        p.start();
        r.close();  // the only reader: the child's sends fail with EPIPE
        BOOST_TEST(p.join(30s));
        BOOST_TEST(p.exitcode() == 0);  // -13 would be a SIGPIPE death
      }
    }
  }
  // The parent's own send to a closed reader is an os_error too.
  auto [r, w] = isola::pipe(false);
  r.close();
  try {
    w.send(1);
    BOOST_FAIL("send to a pipe with no reader did not throw");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == EPIPE);
  }
}

BOOST_AUTO_TEST_CASE(a_process_without_isola_children_ignores_sigpipe_once_it_makes_a_write_end,
                     *utf::timeout(30)) {
  // In a raw forked child with SIGPIPE at its default: no runtime or start
  // method is involved, only the connection.
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGPIPE, SIG_DFL);
    int rc = 4;
    try {
      auto [r, w] = isola::pipe(false);
      r.close();
      rc = send_until_epipe(std::move(w));
    } catch (...) {}
    ::_exit(rc);
  }
  int st = 0;
  BOOST_REQUIRE(::waitpid(pid, &st, 0) == pid);
  BOOST_TEST(WIFEXITED(st));  // not killed by SIGPIPE
  BOOST_TEST(WEXITSTATUS(st) == 0);
}

BOOST_AUTO_TEST_CASE(large_messages_stream_whole_into_every_kind_of_receive, *utf::timeout(120)) {
  for (bool duplex : {true, false}) {
    BOOST_TEST_CONTEXT("duplex " << duplex) {
      auto [r, w] = isola::pipe(duplex);
      isola::process p(isola::process_options{.method = start_method::fork}, send_large_then_small,
                       std::move(w));
      p.start();
      for (std::size_t i = 0; i < large_sizes.size(); ++i) {
        BOOST_TEST_CONTEXT("size " << large_sizes[i]) {
          auto want = pattern(large_sizes[i], static_cast<unsigned>(i));
          switch (i % 4) {
            case 0: {  // exactly the size
              std::vector<std::byte> buf(want.size());
              BOOST_TEST(r.recv_bytes_into(buf) == want.size());
              BOOST_TEST((buf == want));
              break;
            }
            case 1: {  // larger: the rest is untouched
              std::vector<std::byte> buf(want.size() + 100, std::byte{0x5a});
              BOOST_TEST(r.recv_bytes_into(buf) == want.size());
              BOOST_TEST(std::equal(want.begin(), want.end(), buf.begin()));
              BOOST_TEST((buf.back() == std::byte{0x5a}));
              break;
            }
            case 2: {  // too small: the whole message travels in the exception
              std::vector<std::byte> buf(16);
              try {
                r.recv_bytes_into(buf);
                BOOST_FAIL("no buffer_too_short");
              } catch (const isola::buffer_too_short& e) {
                BOOST_TEST((e.message() == want));
              }
              break;
            }
            default: {  // maxlength too small first: it stays, then a fresh vector
              BOOST_CHECK_THROW(r.recv_bytes(want.size() - 1), isola::value_error);
              BOOST_TEST((r.recv_bytes(want.size()) == want));
            }
          }
          BOOST_TEST(r.recv<int>() == static_cast<int>(i));  // the stream is in step
        }
      }
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_streamed_frame_is_checked_by_the_checksum_after_it, *utf::timeout(30)) {
  auto payload = pattern(3000, 7);
  for (bool duplex : {true, false}) {
    BOOST_TEST_CONTEXT("duplex " << duplex) {
      {  // intact, twice in one write: both arrive, the second from the buffer
        auto [r, w] = isola::pipe(duplex);
        auto f = streamed_frame(payload);
        auto two = f;
        two.insert(two.end(), f.begin(), f.end());
        write_raw(w.fileno(), two);
        BOOST_TEST((r.recv_bytes() == payload));
        BOOST_TEST((isola::wait({r}, 0s) == std::vector<std::size_t>{0}));
        BOOST_TEST((r.recv_bytes() == payload));
      }
      {  // a whole frame, then one without its checksum yet: not a message yet
        auto [r, w] = isola::pipe(duplex);
        auto f = streamed_frame(payload);
        auto more = f;
        more.insert(more.end(), f.begin(), f.end() - 4);
        write_raw(w.fileno(), more);
        BOOST_TEST((r.recv_bytes() == payload));
        BOOST_TEST(!r.has_buffered_message());
        BOOST_TEST(isola::wait({r}, 0s).empty());
        write_raw(w.fileno(), std::span(f).last(4));
        BOOST_TEST((r.recv_bytes() == payload));
      }
      // Corruption anywhere: a decode_error, and the connection is closed.
      for (std::size_t at : {std::size_t{4}, std::size_t{24 + 100}, std::size_t{24 + 3000 + 1}}) {
        BOOST_TEST_CONTEXT("flipped byte at " << at) {
          auto [r, w] = isola::pipe(duplex);
          auto f = streamed_frame(payload);
          f[at] ^= std::byte{0x10};
          write_raw(w.fileno(), f);
          BOOST_CHECK_THROW(r.recv_bytes(), isola::decode_error);
          BOOST_TEST(r.closed());
        }
      }
      {  // the writer gone before the checksum
        auto [r, w] = isola::pipe(duplex);
        auto f = streamed_frame(payload);
        write_raw(w.fileno(), std::span(f).first(f.size() - 2));
        w.close();
        std::vector<std::byte> buf(payload.size());
        BOOST_CHECK_THROW(r.recv_bytes_into(buf), isola::decode_error);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(raw_bytes_round_trip_and_recv_bytes_reads_any_message, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  a.send_bytes("hello");
  BOOST_TEST((b.recv_bytes() == as_bytes("hello")));
  a.send_bytes(std::span<const std::byte>{});
  BOOST_TEST(b.recv_bytes().empty());
  a.send(std::string("typed"));
  BOOST_TEST((b.recv_bytes() == isola::encode(std::string("typed"))));
  a.send_bytes("raw");
  BOOST_CHECK_THROW(b.recv<std::string>(), isola::type_error);
  BOOST_TEST((b.recv_bytes() == as_bytes("raw")));
}

BOOST_AUTO_TEST_CASE(maxlength_too_small_is_an_error_and_the_message_stays, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  a.send_bytes("0123456789");
  BOOST_CHECK_THROW(b.recv_bytes(4), isola::value_error);
  BOOST_TEST((b.recv_bytes(10) == as_bytes("0123456789")));
}

BOOST_AUTO_TEST_CASE(recv_bytes_into_a_short_buffer_carries_the_whole_message, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  a.send_bytes("0123456789");
  a.send_bytes("abc");
  std::vector<std::byte> small(4);
  try {
    b.recv_bytes_into(small);
    BOOST_FAIL("no buffer_too_short");
  } catch (const isola::buffer_too_short& e) {
    BOOST_TEST((e.message() == as_bytes("0123456789")));
  }
  BOOST_TEST(b.recv_bytes_into(small) == 3u);  // the next message is intact
  BOOST_TEST(std::string(reinterpret_cast<char*>(small.data()), 3) == "abc");
}

BOOST_AUTO_TEST_CASE(an_oversize_message_is_refused_on_both_sides, *utf::timeout(30)) {
  auto [a, b] = isola::pipe(true, {.max_message_size = 1024});
  BOOST_CHECK_THROW(a.send_bytes(std::vector<std::byte>(2048)), isola::value_error);
  BOOST_CHECK_THROW(a.send(std::string(2048, 'x')), isola::value_error);
  a.send(std::string(100, 'y'));  // nothing of the refused ones was written
  BOOST_TEST(b.recv<std::string>() == std::string(100, 'y'));

  auto [c, d] = isola::pipe();
  isola::connection small_reader(::dup(d.fileno()), true, true, {.max_message_size = 16});
  c.send(std::string(1000, 'z'));
  BOOST_CHECK_THROW(small_reader.recv<std::string>(), isola::value_error);
  BOOST_TEST(!small_reader.readable());  // closed for reading, as documented
}

BOOST_AUTO_TEST_CASE(corrupt_bytes_are_a_decode_error_and_close_the_connection, *utf::timeout(30)) {
  {
    auto [a, b] = isola::pipe();
    const char junk[] = "this is not a frame at all, just bytes";
    BOOST_REQUIRE(::write(a.fileno(), junk, sizeof junk) == static_cast<ssize_t>(sizeof junk));
    BOOST_CHECK_THROW(b.recv<int>(), isola::decode_error);
    BOOST_TEST(b.closed());
  }
  {
    // A valid header with a flipped payload byte: the checksum catches it.
    auto [a, b] = isola::pipe();
    auto f = isola::encode_frame(std::string("payload"));
    f.back() ^= std::byte{0x01};
    BOOST_REQUIRE(::write(a.fileno(), f.data(), f.size()) == static_cast<ssize_t>(f.size()));
    BOOST_CHECK_THROW(b.recv<std::string>(), isola::decode_error);
    BOOST_TEST(b.closed());
  }
  {
    // A peer that dies in the middle of a message: truncated, not a hang.
    auto [a, b] = isola::pipe();
    auto f = isola::encode_frame(std::string(1000, 'q'));
    BOOST_REQUIRE(::write(a.fileno(), f.data(), 500) == 500);
    a.close();
    BOOST_CHECK_THROW(b.recv<std::string>(), isola::decode_error);
  }
}

BOOST_AUTO_TEST_CASE(poll_reports_whether_a_message_is_waiting, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  BOOST_TEST(!b.poll());
  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(!b.poll(50ms));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 >= 50ms));
  a.send(1);
  BOOST_TEST(b.poll(std::nullopt));
  BOOST_TEST(b.recv<int>() == 1);
}

BOOST_AUTO_TEST_CASE(ping_pong_with_a_child_under_every_method, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [here, there] = isola::pipe();
      isola::process p(isola::process_options{.method = m}, doubler, std::move(there));
      p.start();
      for (int i = 0; i < 100; ++i) {
        here.send(i);
        BOOST_REQUIRE(here.recv<int>() == 2 * i);
      }
      here.send(-1);
      BOOST_TEST(here.recv<std::string>() == "bye");
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_descriptor_passes_to_another_process, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola_test::temp_file out;
      auto [here, there] = isola::pipe();
      isola::process p(isola::process_options{.method = m}, recv_handle_and_write,
                       std::move(there));
      p.start();
      int fd = ::open(out.path().c_str(), O_WRONLY | O_CLOEXEC);
      here.send_handle(fd);
      ::close(fd);
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(out.read() == "written by the child");
    }
  }
  // A socket too, within one process.
  auto [a, b] = isola::pipe();
  int sv[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  a.send_handle(sv[0]);
  int got = b.recv_handle();
  BOOST_TEST(got != sv[0]);
  BOOST_REQUIRE(::write(got, "s", 1) == 1);
  char c = 0;
  BOOST_REQUIRE(::read(sv[1], &c, 1) == 1);
  BOOST_TEST(c == 's');
  for (int fd : {sv[0], sv[1], got}) ::close(fd);
}

BOOST_AUTO_TEST_CASE(a_large_message_crosses_in_one_piece, *utf::timeout(60)) {
  auto [a, b] = isola::pipe();
  std::vector<std::uint32_t> big(16 << 20);  // 64 MiB
  std::iota(big.begin(), big.end(), 0u);
  isola::process p(
      isola::process_options{.method = start_method::fork},
      [&big](isola::connection c) { c.send(big); }, std::move(a));
  p.start();
  auto got = b.recv<std::vector<std::uint32_t>>();
  p.join();
  BOOST_TEST(got.size() == big.size());
  BOOST_TEST((got == big));
}

BOOST_AUTO_TEST_CASE(wait_returns_the_ready_connections_and_ended_processes, *utf::timeout(60)) {
  auto [a1, b1] = isola::pipe();
  auto [a2, b2] = isola::pipe();
  isola::process p(block_forever);
  p.start();
  BOOST_TEST(isola::wait({b1, b2, p}, 20ms).empty());
  a2.send(1);
  auto r = isola::wait({b1, b2, p}, 5s);
  BOOST_TEST((r == std::vector<std::size_t>{1}));
  BOOST_TEST(b2.recv<int>() == 1);
  p.terminate();
  r = isola::wait({b1, b2, p});
  BOOST_TEST((r == std::vector<std::size_t>{2}));
  p.join();
  a1.close();  // a closed peer makes the other end ready (recv throws eof_error)
  r = isola::wait({b1, b2}, 5s);
  BOOST_TEST((r == std::vector<std::size_t>{0}));
  BOOST_CHECK_THROW(b1.recv<int>(), isola::eof_error);
}

BOOST_AUTO_TEST_CASE(wait_reports_every_ready_object_not_just_the_first, *utf::timeout(30)) {
  isola::process p(block_forever);
  p.start();
  p.terminate();
  BOOST_REQUIRE((isola::wait({p}, 10s) == std::vector<std::size_t>{0}));
  isola::queue<int> q;
  q.put(1);
  auto [a, b] = isola::pipe();
  a.send(2);
  BOOST_TEST((isola::wait({p, q, b}, 0s) == std::vector<std::size_t>{0, 1, 2}));
  BOOST_TEST((isola::wait({q, p}, 0s) == std::vector<std::size_t>{0, 1}));
  p.join();
}

BOOST_AUTO_TEST_CASE(a_connection_cannot_be_sent_as_a_message, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  auto [c, d] = isola::pipe();
  BOOST_CHECK_THROW(a.send(c), isola::value_error);
}

// CPython's _TestConnection.test_invalid_handles: Connection(-1) and
// Connection(-2) raise ValueError "invalid handle".
BOOST_AUTO_TEST_CASE(a_connection_on_a_negative_descriptor_is_a_value_error, *utf::timeout(30)) {
  for (int fd : {-1, -2}) {
    BOOST_TEST_CONTEXT("descriptor " << fd) {
      try {
        isola::connection c(fd, true, true);
        BOOST_ERROR("accepted descriptor " << fd);
      } catch (const isola::value_error& e) {
        BOOST_TEST(std::string(e.what()).find("invalid handle") != std::string::npos, e.what());
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
