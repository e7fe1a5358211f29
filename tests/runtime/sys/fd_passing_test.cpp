// sys/os.hpp's descriptor passing: the one sendmsg/recvmsg with SCM_RIGHTS
// that pipes, the forkserver and actors' control channels all use.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "sys/os.hpp"

namespace utf = boost::unit_test;
using isola::detail::recv_fds_once;
using isola::detail::send_fds_once;
using isola::detail::unique_fd;

namespace {

struct pair_of_sockets {
  unique_fd a, b;
  explicit pair_of_sockets(int type = SOCK_STREAM) {
    int sv[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

ino_t inode_of(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return st.st_ino;
}

std::span<const iovec> one(iovec& v) { return std::span<const iovec>(&v, 1); }

}  // namespace

BOOST_AUTO_TEST_SUITE(fd_passing)

BOOST_AUTO_TEST_CASE(descriptors_arrive_close_on_exec_and_name_the_same_files, *utf::timeout(10)) {
  pair_of_sockets s;
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  unique_fd r(p[0]), w(p[1]);
  int fds[2] = {r.get(), w.get()};
  char msg[] = "hello";
  iovec v{msg, 5};
  BOOST_TEST(send_fds_once(s.a.get(), one(v), fds) == 5);

  std::vector<int> got;
  char buf[16] = {};
  BOOST_TEST(recv_fds_once(s.b.get(), std::as_writable_bytes(std::span(buf)), got) == 5);
  BOOST_TEST(std::string(buf, 5) == "hello");
  BOOST_REQUIRE(got.size() == 2u);
  for (int fd : got) BOOST_TEST((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  BOOST_TEST(inode_of(got[0]) == inode_of(r.get()));
  // The received write end really writes into the original pipe.
  BOOST_TEST(::write(got[1], "x", 1) == 1);
  char c = 0;
  BOOST_TEST(::read(r.get(), &c, 1) == 1);
  BOOST_TEST(c == 'x');
  for (int fd : got) ::close(fd);
}

BOOST_AUTO_TEST_CASE(hundreds_of_descriptors_travel_when_the_receiver_has_room, *utf::timeout(10)) {
  // The forkserver passes one per queue, pipe or lock argument: up to 253.
  pair_of_sockets s;
  std::vector<unique_fd> owned;
  std::vector<int> fds;
  for (int i = 0; i < 200; ++i) {
    owned.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    fds.push_back(owned.back().get());
  }
  char b = 'z';
  iovec v{&b, 1};
  BOOST_TEST(send_fds_once(s.a.get(), one(v), fds) == 1);
  std::vector<int> got;
  char in = 0;
  BOOST_TEST(recv_fds_once(s.b.get(), std::as_writable_bytes(std::span(&in, 1)), got, 0, nullptr,
                           253) == 1);
  BOOST_TEST(got.size() == 200u);
  for (int fd : got) ::close(fd);
}

BOOST_AUTO_TEST_CASE(a_closed_peer_reads_as_zero_and_no_data_as_eagain, *utf::timeout(10)) {
  pair_of_sockets s;
  std::vector<int> got;
  char buf[4];
  BOOST_TEST(recv_fds_once(s.b.get(), std::as_writable_bytes(std::span(buf)), got, MSG_DONTWAIT) ==
             -EAGAIN);
  s.a.reset();
  BOOST_TEST(recv_fds_once(s.b.get(), std::as_writable_bytes(std::span(buf)), got) == 0);
  BOOST_TEST(got.empty());
}

BOOST_AUTO_TEST_CASE(an_oversize_datagram_is_reported_truncated, *utf::timeout(10)) {
  pair_of_sockets s(SOCK_SEQPACKET);
  std::string big(100, 'q');
  iovec v{big.data(), big.size()};
  BOOST_TEST(send_fds_once(s.a.get(), one(v), {}) == 100);
  std::vector<int> got;
  char buf[10];
  bool truncated = false;
  BOOST_TEST(recv_fds_once(s.b.get(), std::as_writable_bytes(std::span(buf)), got, 0, &truncated) ==
             10);
  BOOST_TEST(truncated);
}

BOOST_AUTO_TEST_CASE(sending_to_a_closed_peer_is_epipe_not_a_signal, *utf::timeout(10)) {
  pair_of_sockets s;
  s.b.reset();
  char c = 'a';
  iovec v{&c, 1};
  BOOST_TEST(send_fds_once(s.a.get(), one(v), {}) == -EPIPE);
}

BOOST_AUTO_TEST_SUITE_END()
