// A port of CPython's Lib/test/_test_multiprocessing.py classes
// _TestConnection and _TestPoll (multiprocessing.Pipe's connections) into the
// Boost.Test suites TestConnection and TestPoll, each case under every start
// method where a child takes part. Children are real processes.
//
// Cases not ported here, and why:
// - _TestWait (multiprocessing.connection.wait): tests/runtime/channel/wait_test.cpp.
// - _TestConnection.test_invalid_handles: tests/runtime/channel/connection_test.cpp
//   (a_connection_on_a_negative_descriptor_is_a_value_error).
// - test_sendbytes' out-of-range offset/size cases (ValueError): send_bytes
//   takes a std::span, so a slice is made (and checked) by the caller.
// - _TestListener / _TestListenerClient / _TestPicklingConnections: the
//   listener/client suites; a connection is not sent as a message
//   (docs/decisions.md, Channels), send_handle() passes descriptors.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <isola/codec.hpp>
#include <isola/connection.hpp>
#include <isola/event.hpp>
#include <isola/process.hpp>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "port_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::start_method;
using clk = std::chrono::steady_clock;

namespace {

using cpython_port::make;
using cpython_port::seconds_since;

std::vector<std::byte> bytes_of(std::string_view s) {
  auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

// _TestConnection._echo: sends back every payload until an empty one.
void echo(isola::connection conn) {
  for (;;) {
    auto msg = conn.recv_bytes();
    if (msg.empty()) break;
    conn.send_bytes(msg);
  }
  conn.close();
}

// _TestConnection._writefd: receives a descriptor and writes data to it;
// with create_dummy_fds, first fills descriptors 0..255 so that the one
// received is above 255 (CPython's test_large_fd_transfer, issue #11657).
void write_to_received_fd(isola::connection conn, std::string data, bool create_dummy_fds) {
  if (create_dummy_fds) {
    for (int i = 0; i < 256; ++i) {
      struct stat st {};
      if (::fstat(i, &st) != 0) ::dup2(conn.fileno(), i);
    }
  }
  int fd = conn.recv_handle();
  [[maybe_unused]] auto n = ::write(fd, data.data(), data.size());
  ::close(fd);
}

// _TestConnection._send_data_without_fd
void send_data_without_fd(isola::connection conn) {
  [[maybe_unused]] auto n = ::write(conn.fileno(), "\0", 1);
}

// _TestPoll._child_strings
void child_strings(isola::connection conn, std::vector<std::string> strings) {
  for (const auto& s : strings) {
    std::this_thread::sleep_for(10ms);  // CPython: 0.1 s
    conn.send_bytes(s);
  }
  conn.close();
}

// _TestPoll._child_boundaries: polls the read end while the parent writes.
void child_boundaries(isola::connection r, isola::event polling) {
  polling.set();
  r.poll(5s);
}

// _TestPoll._child_dont_merge
void child_dont_merge(isola::connection b) {
  b.send_bytes("a");
  b.send_bytes("b");
  b.send_bytes("cd");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(TestConnection)

// test_connection: an echoing child; typed messages, raw bytes, receive into
// a buffer (at an offset, and too short), poll with and without a timeout, a
// 16 MiB message, EOF once the child is gone.
BOOST_AUTO_TEST_CASE(an_echoing_child_returns_every_kind_of_message, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [conn, child_conn] = isola::pipe();
      auto p = make(m, echo, std::move(child_conn));
      p.start();
      BOOST_TEST(conn.fileno() >= 0);

      // send(seq): the echo returns the message's encoding as bytes, which
      // is what recv_bytes() gives for any message (CPython: the pickle).
      const std::vector<double> seq{1, 2.25};
      conn.send(seq);
      BOOST_TEST((isola::decode<std::vector<double>>(conn.recv_bytes()) == seq));

      const auto msg = bytes_of("hello world");
      conn.send_bytes(msg);
      BOOST_TEST((conn.recv_bytes() == msg));

      // recv_bytes_into, at the start of the buffer and at an offset.
      const std::vector<int> arr{0, 1, 2, 3};
      const auto arr_bytes = std::as_bytes(std::span(arr));
      {
        std::vector<int> buffer(10, 0);
        conn.send_bytes(arr_bytes);
        BOOST_TEST(conn.recv_bytes_into(std::as_writable_bytes(std::span(buffer))) ==
                   arr.size() * sizeof(int));
        BOOST_TEST((buffer == std::vector<int>{0, 1, 2, 3, 0, 0, 0, 0, 0, 0}));
      }
      {
        std::vector<int> buffer(10, 0);
        conn.send_bytes(arr_bytes);
        BOOST_TEST(conn.recv_bytes_into(
                       std::as_writable_bytes(std::span(buffer)).subspan(3 * sizeof(int))) ==
                   arr.size() * sizeof(int));
        BOOST_TEST((buffer == std::vector<int>{0, 0, 0, 0, 1, 2, 3, 0, 0, 0}));
      }
      // A buffer too short: the whole message travels in the exception.
      {
        std::string longmsg_s;
        for (int i = 0; i < 10; ++i) longmsg_s += "hello world";
        const auto longmsg = bytes_of(longmsg_s);
        std::vector<std::byte> buffer(40);
        conn.send_bytes(longmsg);
        try {
          conn.recv_bytes_into(buffer);
          BOOST_FAIL("expected buffer_too_short");
        } catch (const isola::buffer_too_short& e) {
          BOOST_TEST((e.message() == longmsg));
        }
      }

      auto t0 = clk::now();
      BOOST_TEST(!conn.poll());
      BOOST_TEST(!conn.poll(isola::connection::duration(-1)));
      BOOST_TEST(seconds_since(t0) < 0.5);  // at once (slack for a loaded CI machine)
      t0 = clk::now();
      BOOST_TEST(!conn.poll(100ms));  // TIMEOUT1
      BOOST_TEST(seconds_since(t0) >= 0.1 - 0.01);

      conn.send(0);  // CPython: None
      t0 = clk::now();
      BOOST_TEST(conn.poll(10s));
      BOOST_TEST(isola::decode<int>(conn.recv_bytes()) == 0);

      const std::vector<std::byte> really_big_msg(std::size_t{16} << 20, std::byte{'X'});
      conn.send_bytes(really_big_msg);
      BOOST_TEST((conn.recv_bytes() == really_big_msg));

      conn.send_bytes(std::span<const std::byte>{});  // tell the child to quit
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(conn.readable());
      BOOST_TEST(conn.writable());
      BOOST_CHECK_THROW(conn.recv<int>(), isola::eof_error);
      BOOST_CHECK_THROW(conn.recv_bytes(), isola::eof_error);
    }
  }
}

// test_duplex_false: a simplex pipe's ends refuse the other direction
// (CPython: OSError; isola: value_error).
BOOST_AUTO_TEST_CASE(a_simplex_pipe_carries_one_way_and_refuses_the_other, *utf::timeout(10)) {
  auto [reader, writer] = isola::pipe(false);
  writer.send(1);
  BOOST_TEST(reader.recv<int>() == 1);
  BOOST_TEST(reader.readable());
  BOOST_TEST(!reader.writable());
  BOOST_TEST(!writer.readable());
  BOOST_TEST(writer.writable());
  BOOST_CHECK_THROW(reader.send(2), isola::value_error);
  BOOST_CHECK_THROW(writer.recv<int>(), isola::value_error);
  BOOST_CHECK_THROW(writer.poll(), isola::value_error);
}

// test_spawn_close: the parent's copy of the child's end is closed right
// after start() (isola closes it: it was moved into the child's arguments),
// and the child still echoes.
BOOST_AUTO_TEST_CASE(the_childs_end_closed_in_the_parent_right_after_start_still_works,
                     *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [conn, child_conn] = isola::pipe();
      auto p = make(m, echo, std::move(child_conn));
      p.start();
      BOOST_TEST(child_conn.closed());
      const auto msg = bytes_of("hello");
      conn.send_bytes(msg);
      BOOST_TEST((conn.recv_bytes() == msg));
      conn.send_bytes(std::span<const std::byte>{});
      conn.close();
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

// test_sendbytes: slices of a message, empty ones included.
BOOST_AUTO_TEST_CASE(slices_of_a_message_arrive_as_sent, *utf::timeout(10)) {
  const std::string msg = "abcdefghijklmnopqrstuvwxyz";
  auto [a, b] = isola::pipe();
  auto sv = std::string_view(msg);
  a.send_bytes(sv);
  BOOST_TEST((b.recv_bytes() == bytes_of(msg)));
  a.send_bytes(sv.substr(5));
  BOOST_TEST((b.recv_bytes() == bytes_of(msg.substr(5))));
  a.send_bytes(sv.substr(7, 8));
  BOOST_TEST((b.recv_bytes() == bytes_of(msg.substr(7, 8))));
  a.send_bytes(sv.substr(26));
  BOOST_TEST(b.recv_bytes().empty());
  a.send_bytes(sv.substr(26, 0));
  BOOST_TEST(b.recv_bytes().empty());
}

// test_fd_transfer / test_large_fd_transfer: a descriptor sent to a child
// (one above 255 too, received where the child's low descriptors are all
// taken) is written through there.
BOOST_AUTO_TEST_CASE(a_descriptor_sent_to_a_child_is_written_through_there, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    for (bool large : {false, true}) {
      BOOST_TEST_CONTEXT("start method " << m << (large ? ", large descriptors" : "")) {
        auto [conn, child_conn] = isola::pipe(true);
        auto p = make(m, write_to_received_fd, std::move(child_conn),
                      std::string(large ? "bar" : "foo"), large);
        p.start();
        isola_test::temp_file f;
        int fd = ::open(f.path().c_str(), O_WRONLY | O_CLOEXEC);
        BOOST_REQUIRE(fd >= 0);
        if (large) {
          int newfd = 256;
          struct stat st {};
          while (::fstat(newfd, &st) == 0) ++newfd;
          ::dup3(fd, newfd, O_CLOEXEC);
          ::close(fd);
          fd = newfd;
        }
        conn.send_handle(fd);
        ::close(fd);
        BOOST_TEST(p.join(20s));
        BOOST_TEST(p.exitcode() == 0);
        BOOST_TEST(f.read() == (large ? "bar" : "foo"));
      }
    }
  }
}

// test_missing_fd_transfer: bytes that come without a descriptor are an
// error for recv_handle(), not a hang (CPython: RuntimeError).
BOOST_AUTO_TEST_CASE(recv_handle_of_data_without_a_descriptor_is_an_error, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [conn, child_conn] = isola::pipe(true);
      auto p = make(m, send_data_without_fd, std::move(child_conn));
      p.start();
      BOOST_CHECK_THROW(conn.recv_handle(), isola::error);
      p.join();
    }
  }
}

// test_context: closed ends refuse to receive (CPython: OSError).
BOOST_AUTO_TEST_CASE(closed_ends_refuse_to_receive, *utf::timeout(10)) {
  auto [a, b] = isola::pipe();
  a.send(1729);
  BOOST_TEST(b.recv<int>() == 1729);
  BOOST_TEST(!a.closed());
  BOOST_TEST(!b.closed());
  a.close();
  b.close();
  BOOST_TEST(a.closed());
  BOOST_TEST(b.closed());
  BOOST_CHECK_THROW(a.recv<int>(), isola::value_error);
  BOOST_CHECK_THROW(b.recv<int>(), isola::value_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(TestPoll)

// test_empty_string: an empty message is a message.
BOOST_AUTO_TEST_CASE(an_empty_message_makes_poll_true, *utf::timeout(10)) {
  auto [a, b] = isola::pipe();
  BOOST_TEST(!a.poll());
  b.send_bytes("");
  BOOST_TEST(a.poll());
  BOOST_TEST(a.poll());
}

// test_strings: messages sent one by one, empty ones among them, each found
// by poll and received whole.
BOOST_AUTO_TEST_CASE(poll_finds_each_message_of_a_slow_sender, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      const std::vector<std::string> strings{"hello", "", "a", "b", "", "bye", "", "lop"};
      auto [a, b] = isola::pipe();
      auto p = make(m, child_strings, std::move(b), strings);
      p.start();
      for (const auto& s : strings) {
        BOOST_TEST(a.poll(10s));
        BOOST_TEST((a.recv_bytes() == bytes_of(s)));
      }
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

// test_boundaries: a child polling the same read end does not take part of
// a message: one of them, whole, is still there.
BOOST_AUTO_TEST_CASE(polling_in_another_process_never_takes_part_of_a_message, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [r, w] = isola::pipe(false);
      isola::event polling;
      auto p =
          make(m, child_boundaries, isola::connection(::dup(r.fileno()), true, false), polling);
      p.start();
      BOOST_TEST(polling.wait(20s));  // CPython: sleeps 2 s
      const std::vector<std::string> L{"first", "second"};
      for (const auto& s : L) w.send_bytes(s);
      w.close();
      p.join();
      auto got = r.recv_bytes();
      BOOST_TEST((got == bytes_of(L[0]) || got == bytes_of(L[1])));
    }
  }
}

// test_dont_merge: small messages sent back to back stay apart.
BOOST_AUTO_TEST_CASE(messages_sent_back_to_back_are_not_merged, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto [a, b] = isola::pipe();
      BOOST_TEST(!a.poll(0s));
      BOOST_TEST(!a.poll(100ms));
      auto p = make(m, child_dont_merge, std::move(b));
      p.start();
      BOOST_TEST((a.recv_bytes() == bytes_of("a")));
      BOOST_TEST(a.poll(1s));
      BOOST_TEST(a.poll(1s));
      BOOST_TEST((a.recv_bytes() == bytes_of("b")));
      BOOST_TEST(a.poll(1s));
      BOOST_TEST(a.poll(1s));
      BOOST_TEST(a.poll(0s));
      BOOST_TEST((a.recv_bytes() == bytes_of("cd")));
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
