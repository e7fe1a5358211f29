#include "isola/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "os.hpp"

namespace isola {

namespace {
constexpr std::size_t read_chunk = 64 * 1024;

std::uint64_t raw_tag() { return type_tag<raw_bytes_tag>(); }

struct handle_marker {};
}  // namespace

}  // namespace isola

ISOLA_TYPE_NAME(isola::handle_marker, "isola.handle")

namespace isola {

void connection::release_in_child(void* self) noexcept {
  auto* c = static_cast<connection*>(self);
  c->fd_ = -1;  // the registry closes the descriptor
  c->readable_ = c->writable_ = false;
}

connection::connection(int fd, bool readable, bool writable, connection_options opts)
    : fd_(fd), readable_(readable), writable_(writable), opts_(opts) {
  detail::register_handle_fd(fd_, this, &release_in_child);
}

connection::~connection() { close(); }

connection::connection(connection&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      readable_(std::exchange(o.readable_, false)),
      writable_(std::exchange(o.writable_, false)),
      opts_(o.opts_),
      rbuf_(std::move(o.rbuf_)),
      rpos_(std::exchange(o.rpos_, 0)),
      rend_(std::exchange(o.rend_, 0)),
      pending_(std::move(o.pending_)),
      received_fds_(std::move(o.received_fds_)) {
  o.pending_.reset();
  detail::move_handle_fd(fd_, this);
}

connection& connection::operator=(connection&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    readable_ = std::exchange(o.readable_, false);
    writable_ = std::exchange(o.writable_, false);
    opts_ = o.opts_;
    rbuf_ = std::move(o.rbuf_);
    rpos_ = std::exchange(o.rpos_, 0);
    rend_ = std::exchange(o.rend_, 0);
    pending_ = std::move(o.pending_);
    o.pending_.reset();
    received_fds_ = std::move(o.received_fds_);
    detail::move_handle_fd(fd_, this);
  }
  return *this;
}

void connection::close() noexcept {
  if (fd_ >= 0) {
    detail::unregister_handle_fd(fd_);
    ::close(fd_);
  }
  fd_ = -1;
  readable_ = writable_ = false;
  for (int fd : received_fds_) ::close(fd);
  received_fds_.clear();
  pending_.reset();
  rpos_ = rend_ = 0;
}

int connection::fileno() const {
  if (fd_ < 0) throw value_error("the connection is closed");
  return fd_;
}

void connection::require_readable() const {
  if (fd_ < 0) throw value_error("the connection is closed");
  if (!readable_) throw value_error("this end of the pipe is write-only");
}

void connection::require_writable() const {
  if (fd_ < 0) throw value_error("the connection is closed");
  if (!writable_) throw value_error("this end of the pipe is read-only");
}

void connection::fail_corrupt(const std::string& what) {
  close();
  throw decode_error(what + "; the connection has been closed");
}

bytes& connection::send_buffer() {
  thread_local bytes buf;
  if (buf.capacity() > (std::size_t{4} << 20)) bytes().swap(buf);  // don't pin a huge one
  return buf;
}

void connection::send_raw(std::span<const std::byte> a, std::span<const std::byte> b,
                          int pass_fd) {
  iovec iov[2] = {{const_cast<std::byte*>(a.data()), a.size()},
                  {const_cast<std::byte*>(b.data()), b.size()}};
  iovec* cur = iov;
  int n = b.empty() ? 1 : 2;
  bool with_fd = pass_fd >= 0;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  while (n > 0) {
    msghdr msg{};
    msg.msg_iov = cur;
    msg.msg_iovlen = static_cast<std::size_t>(n);
    if (with_fd) {  // the descriptor rides on the first byte of the frame
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t r = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET)
        throw os_error(errno, "send: the other end of the pipe is closed (" +
                                  std::string(std::strerror(errno)) + ")");
      detail::throw_errno("send");
    }
    with_fd = false;
    auto sent = static_cast<std::size_t>(r);
    while (n > 0 && sent >= cur->iov_len) {
      sent -= cur->iov_len;
      ++cur;
      --n;
    }
    if (n > 0) {
      cur->iov_base = static_cast<char*>(cur->iov_base) + sent;
      cur->iov_len -= sent;
    }
  }
}

void connection::send_frame(std::span<const std::byte> f) {
  require_writable();
  if (f.size() - frame_header_size > opts_.max_message_size)
    throw value_error("message of " + std::to_string(f.size() - frame_header_size) +
                      " bytes exceeds max_message_size (" +
                      std::to_string(opts_.max_message_size) + "); nothing was sent");
  send_raw(f, {});
}

void connection::send_bytes(std::span<const std::byte> data) {
  require_writable();
  if (data.size() > opts_.max_message_size)
    throw value_error("message of " + std::to_string(data.size()) +
                      " bytes exceeds max_message_size (" +
                      std::to_string(opts_.max_message_size) + "); nothing was sent");
  frame_header h;
  h.tag = raw_tag();
  h.size = data.size();
  h.crc = detail::frame_crc(h.tag, data);
  send_raw(std::as_bytes(std::span(&h, 1)), data);
}

void connection::send_handle(int fd) {
  require_writable();
  frame_header h;
  h.tag = type_tag<handle_marker>();
  h.size = 0;
  h.crc = detail::frame_crc(h.tag, {});
  send_raw(std::as_bytes(std::span(&h, 1)), {}, fd);
}

int connection::recv_handle() {
  auto& f = next_frame();
  if (f.tag != type_tag<handle_marker>())
    detail::throw_type_mismatch(type_tag<handle_marker>(), type_name<handle_marker>(), f.tag);
  if (received_fds_.empty()) fail_corrupt("a handle message arrived without its descriptor");
  int fd = received_fds_.front();
  received_fds_.pop_front();
  pending_.reset();
  return fd;
}

bool connection::fill(bool block) {
  if (rbuf_.size() < read_chunk) rbuf_.resize(read_chunk);
  if (rpos_ > 0 && rpos_ == rend_) rpos_ = rend_ = 0;
  if (rend_ == rbuf_.size()) {
    if (rpos_ > 0) {
      std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
      rend_ -= rpos_;
      rpos_ = 0;
    } else {
      rbuf_.resize(rbuf_.size() * 2);
    }
  }
  iovec iov{rbuf_.data() + rend_, rbuf_.size() - rend_};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  for (;;) {
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == ECONNRESET) return false;
      detail::throw_errno("recv");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < n; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          received_fds_.push_back(fd);
        }
      }
    }
    if (r == 0) return false;
    rend_ += static_cast<std::size_t>(r);
    return true;
  }
}

frame_header connection::read_header() {
  require_readable();
  while (buffered() < frame_header_size) {
    if (!fill(true)) {
      if (buffered() == 0) throw eof_error("the other end of the pipe is closed");
      fail_corrupt("the other end closed in the middle of a message header");
    }
  }
  frame_header h;
  try {
    h = parse_frame_header(std::span(rbuf_).subspan(rpos_, frame_header_size),
                           opts_.max_message_size);
  } catch (const decode_error& e) {
    std::string what = e.what();
    if (what.find("oversize") != std::string::npos) {
      readable_ = false;
      throw value_error(what + "; the connection is closed for reading");
    }
    fail_corrupt(what);
  }
  rpos_ += frame_header_size;
  return h;
}

void connection::read_payload(const frame_header& h, std::span<std::byte> into) {
  auto size = static_cast<std::size_t>(h.size);
  std::size_t have = std::min(size, buffered());
  if (have) std::memcpy(into.data(), rbuf_.data() + rpos_, have);
  rpos_ += have;
  // The rest of a large payload goes straight into place: no second copy.
  while (have < size) {
    ssize_t r = ::read(fd_, into.data() + have, size - have);
    if (r < 0) {
      if (errno == EINTR) continue;
      detail::throw_errno("recv");
    }
    if (r == 0)
      fail_corrupt("the other end closed in the middle of a message (" + std::to_string(have) +
                   " of " + std::to_string(size) + " bytes)");
    have += static_cast<std::size_t>(r);
  }
  try {
    verify_frame(h, into.first(size));
  } catch (const decode_error& e) {
    fail_corrupt(e.what());
  }
}

connection::frame& connection::next_frame() {
  if (pending_) return *pending_;
  auto h = read_header();
  frame f;
  f.tag = h.tag;
  f.payload.resize(static_cast<std::size_t>(h.size));
  read_payload(h, f.payload);
  pending_ = std::move(f);
  return *pending_;
}

bool connection::has_buffered_message() const {
  if (pending_) return true;
  if (buffered() < frame_header_size) return false;
  frame_header h;
  std::memcpy(&h, rbuf_.data() + rpos_, sizeof h);
  return buffered() - frame_header_size >= h.size;
}

bool connection::poll(std::optional<duration> timeout) {
  require_readable();
  if (pending_ || buffered() > 0) return true;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (timeout)
    deadline = std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(*timeout);
  return detail::wait_readable(fd_, deadline);
}

std::vector<std::byte> connection::recv_bytes(std::size_t maxlength) {
  auto& f = next_frame();
  if (f.payload.size() > maxlength)
    throw value_error("message of " + std::to_string(f.payload.size()) +
                      " bytes is longer than maxlength (" + std::to_string(maxlength) +
                      "); it stays in the connection");
  auto out = std::move(f.payload);
  pending_.reset();
  return out;
}

std::size_t connection::recv_bytes_into(std::span<std::byte> buf) {
  if (!pending_) {
    // The common case reads the payload straight into the caller's buffer.
    auto h = read_header();
    auto n = static_cast<std::size_t>(h.size);
    if (n <= buf.size()) {
      read_payload(h, buf);
      return n;
    }
    frame f;
    f.tag = h.tag;
    f.payload.resize(n);
    read_payload(h, f.payload);
    throw buffer_too_short(std::move(f.payload), buf.size());
  }
  auto& f = *pending_;
  auto n = f.payload.size();
  if (n > buf.size()) {
    auto whole = std::move(f.payload);
    pending_.reset();
    throw buffer_too_short(std::move(whole), buf.size());
  }
  std::memcpy(buf.data(), f.payload.data(), n);
  pending_.reset();
  return n;
}

std::pair<connection, connection> pipe(bool duplex, connection_options opts) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    detail::throw_errno("socketpair");
  if (duplex) return {connection(sv[0], true, true, opts), connection(sv[1], true, true, opts)};
  ::shutdown(sv[0], SHUT_WR);
  ::shutdown(sv[1], SHUT_RD);
  return {connection(sv[0], true, false, opts), connection(sv[1], false, true, opts)};
}

}  // namespace isola
