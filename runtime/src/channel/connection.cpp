#include "isola/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "isola/detail/shm_ring.hpp"
#include "sys/os.hpp"

namespace isola {

namespace {
constexpr std::size_t read_chunk = 64 * 1024;
// A send_bytes payload at least this large is streamed: its checksum comes
// after it (see send_bytes), and a new vector receiving it is filled through
// rbuf_ grown to stream_chunk (see read_fresh_payload).
constexpr std::size_t stream_threshold = std::size_t{1} << 20;
// Large payloads are written, read and checksummed in pieces of at most this
// size: each is checksummed while it is still in the cache (L2 here is 2 MiB)
// that the copy into or out of the kernel just filled.
constexpr std::size_t stream_chunk = 256 * 1024;
// A pipe carrying a streamed message is enlarged to this, once: with the
// default 64 KiB every 16 pages cost the reader a wake-up, which on two CPUs
// caps a pipe at ~0.5 GB/s (1 MiB: ~2 GB/s).
constexpr int large_pipe_buffer = 1 << 20;
// The frame of a streamed payload: magic "ISLT", the header's crc field
// covers only (tag, size), and a u32 CRC-32C of (tag, size, payload) — what
// an "ISL1" header would carry — follows the payload.
constexpr std::uint32_t trailed_magic = 0x544c5349;
// A socket that carries a large message asks for this much send buffer, once
// (the kernel doubles it, capped by net.core.wmem_max): each time a full
// buffer blocks the sender, the wake-up costs ~45 us when the receiver runs
// on the other CPU. More would spill the in-flight data out of the cache when
// both run on one CPU.
constexpr int large_socket_buffer = 1 << 20;

std::uint32_t head_crc(std::uint64_t tag, std::uint64_t size) {
  std::uint64_t head[2] = {tag, size};
  return crc32c(std::as_bytes(std::span(head)));
}

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
    : opts_(opts) {
  // Python's Connection(handle) raises ValueError("invalid handle") too.
  if (fd < 0)
    throw value_error("connection: invalid handle " + std::to_string(fd) +
                      " (a descriptor must be non-negative)");
  adopt(fd, readable, writable);
}

void connection::adopt(int fd, bool readable, bool writable) {
  fd_ = fd;
  readable_ = readable;
  writable_ = writable;
  struct stat st {};
  socket_ = fd_ >= 0 && ::fstat(fd_, &st) == 0 && S_ISSOCK(st.st_mode);
  grown_ = false;
  // Only sockets can say MSG_NOSIGNAL; a process writing to a pipe must
  // ignore SIGPIPE, or a reader that is gone kills it instead of returning
  // EPIPE. Done here, where this process gets the write end, whatever start
  // method brought it (and whether or not an isola::runtime exists).
  if (fd_ >= 0 && writable_ && !socket_) detail::ignore_sigpipe();
  detail::register_handle_fd(fd_, this, &release_in_child);
}

connection::~connection() { close(); }

connection::connection(connection&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      readable_(std::exchange(o.readable_, false)),
      writable_(std::exchange(o.writable_, false)),
      socket_(o.socket_),
      grown_(o.grown_),
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
    socket_ = o.socket_;
    grown_ = o.grown_;
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

void connection::require_socket(const char* what) const {
  if (!socket_)
    throw value_error(std::string(what) +
                      ": descriptors can only be passed over a duplex pipe (a socket); this "
                      "end is a simplex pipe");
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

void connection::send_raw(std::span<const std::byte> a, std::span<const std::byte> b, int pass_fd) {
  iovec iov[2] = {{const_cast<std::byte*>(a.data()), a.size()},
                  {const_cast<std::byte*>(b.data()), b.size()}};
  iovec* cur = iov;
  int n = b.empty() ? 1 : 2;
  bool with_fd = pass_fd >= 0;
  while (n > 0) {
    ssize_t r;
    if (!socket_) {
      r = n == 1 ? ::write(fd_, cur->iov_base, cur->iov_len) : ::writev(fd_, cur, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) r = -errno;
    } else {
      // The descriptor rides on the first byte of the frame.
      const int one_fd[1] = {pass_fd};
      r = detail::send_fds_once(fd_, std::span<const iovec>(cur, static_cast<std::size_t>(n)),
                                with_fd ? std::span<const int>(one_fd) : std::span<const int>());
    }
    if (r < 0) {
      const int err = static_cast<int>(-r);
      if (err == EPIPE || err == ECONNRESET)
        throw os_error(err, "send: the other end of the pipe is closed (" +
                                std::string(std::strerror(err)) + ")");
      detail::throw_errno("send", err);
    }
    with_fd = false;
    // Past what was sent: whole iovecs, then into the next one.
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
                      " bytes exceeds max_message_size (" + std::to_string(opts_.max_message_size) +
                      "); nothing was sent");
  send_raw(f, {});
}

void connection::send_bytes(std::span<const std::byte> data) {
  require_writable();
  if (data.size() > opts_.max_message_size)
    throw value_error("message of " + std::to_string(data.size()) +
                      " bytes exceeds max_message_size (" + std::to_string(opts_.max_message_size) +
                      "); nothing was sent");
  frame_header h;
  h.tag = raw_tag();
  h.size = data.size();
  if (data.size() < stream_threshold) {
    h.crc = detail::frame_crc(h.tag, data);
    send_raw(std::as_bytes(std::span(&h, 1)), data);
    return;
  }
  // A large payload is not read twice (once for a checksum in the header,
  // once by the copy into the kernel): each chunk is checksummed just before
  // it is written, while the write's copy finds it in the cache, and the
  // checksum follows the payload. The receiver checks as chunks land, so both
  // checksums overlap the transfer.
  grow_buffers();
  h.magic = trailed_magic;
  h.crc = head_crc(h.tag, h.size);
  std::uint32_t crc = h.crc;
  std::span<const std::byte> prefix = std::as_bytes(std::span(&h, 1));
  while (!data.empty()) {
    auto chunk = data.first(std::min(stream_chunk, data.size()));
    data = data.subspan(chunk.size());
    crc = crc32c(chunk, crc);
    send_raw(prefix, chunk);
    prefix = {};
  }
  send_raw(std::as_bytes(std::span(&crc, 1)), {});
}

void connection::grow_buffers() {
  if (grown_) return;
  grown_ = true;  // hints, tried once: either can be refused (limits), and that is fine
  if (socket_) {
    int have = 0;
    socklen_t len = sizeof have;
    if (::getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have < large_socket_buffer)
      ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &large_socket_buffer, sizeof large_socket_buffer);
  } else if (::fcntl(fd_, F_GETPIPE_SZ) < large_pipe_buffer) {
    ::fcntl(fd_, F_SETPIPE_SZ, large_pipe_buffer);
  }
}

void connection::send_handle(int fd) {
  require_writable();
  require_socket("send_handle");
  frame_header h;
  h.tag = type_tag<handle_marker>();
  h.size = 0;
  h.crc = detail::frame_crc(h.tag, {});
  send_raw(std::as_bytes(std::span(&h, 1)), {}, fd);
}

int connection::recv_handle() {
  require_readable();
  require_socket("recv_handle");
  auto& f = next_frame();
  if (f.tag != type_tag<handle_marker>())
    detail::throw_type_mismatch(type_tag<handle_marker>(), type_name<handle_marker>(), f.tag);
  if (received_fds_.empty()) fail_corrupt("a handle message arrived without its descriptor");
  int fd = received_fds_.front();
  received_fds_.pop_front();
  pending_.reset();
  return fd;
}

bool connection::fill() {
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
  if (!socket_) {
    for (;;) {
      ssize_t r = ::read(fd_, rbuf_.data() + rend_, rbuf_.size() - rend_);
      if (r < 0) {
        if (errno == EINTR) continue;
        detail::throw_errno("recv");
      }
      if (r == 0) return false;
      rend_ += static_cast<std::size_t>(r);
      return true;
    }
  }
  std::vector<int> fds;  // allocates only when descriptors came
  ssize_t r =
      detail::recv_fds_once(fd_, std::span(rbuf_.data() + rend_, rbuf_.size() - rend_), fds);
  received_fds_.insert(received_fds_.end(), fds.begin(), fds.end());
  if (r < 0) {
    if (r == -ECONNRESET) return false;
    detail::throw_errno("recv", static_cast<int>(-r));
  }
  if (r == 0) return false;
  rend_ += static_cast<std::size_t>(r);
  return true;
}

frame_header connection::read_header(bool& trailed) {
  require_readable();
  while (buffered() < frame_header_size) {
    if (!fill()) {
      if (buffered() == 0) throw eof_error("the other end of the pipe is closed");
      fail_corrupt("the other end closed in the middle of a message header");
    }
  }
  frame_header h;
  std::memcpy(&h, rbuf_.data() + rpos_, sizeof h);
  trailed = h.magic == trailed_magic;
  if (trailed) {
    if (h.crc != head_crc(h.tag, h.size)) fail_corrupt("corrupt frame: header checksum mismatch");
    h.magic = frame_magic;
  }
  try {
    h = parse_frame_header(std::as_bytes(std::span(&h, 1)), opts_.max_message_size);
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

std::uint32_t connection::read_trailer() {
  while (buffered() < sizeof(std::uint32_t))
    if (!fill()) fail_corrupt("the other end closed in the middle of a message (its checksum)");
  std::uint32_t crc;
  std::memcpy(&crc, rbuf_.data() + rpos_, sizeof crc);
  rpos_ += sizeof crc;
  return crc;
}

void connection::read_payload(const frame_header& h, bool trailed, std::span<std::byte> into) {
  auto size = static_cast<std::size_t>(h.size);
  std::size_t have = std::min(size, buffered());
  if (have) std::memcpy(into.data(), rbuf_.data() + rpos_, have);
  rpos_ += have;
  if (have == size && !trailed) {
    try {
      verify_frame(h, into.first(size));
    } catch (const decode_error& e) {
      fail_corrupt(e.what());
    }
    return;
  }
  // The rest of a large payload goes straight into place (no second copy),
  // and is checksummed piece by piece as it lands, while it is in the cache:
  // a separate pass after the last byte would read the whole payload again
  // from memory.
  std::uint32_t crc = head_crc(h.tag, h.size);
  std::size_t checked = 0;
  auto check_upto = [&](std::size_t end) {
    crc = crc32c(into.subspan(checked, end - checked), crc);
    checked = end;
  };
  while (have < size) {
    ssize_t r = ::read(fd_, into.data() + have, std::min(size - have, stream_chunk));
    if (r < 0) {
      if (errno == EINTR) continue;
      detail::throw_errno("recv");
    }
    if (r == 0)
      fail_corrupt("the other end closed in the middle of a message (" + std::to_string(have) +
                   " of " + std::to_string(size) + " bytes)");
    have += static_cast<std::size_t>(r);
    if (have - checked >= stream_chunk) check_upto(have);  // fewer, larger: faster CRC
  }
  check_upto(size);
  if (crc != (trailed ? read_trailer() : h.crc)) fail_corrupt("corrupt frame: checksum mismatch");
}

void connection::read_fresh_payload(const frame_header& h, bool trailed, bytes& out) {
  auto size = static_cast<std::size_t>(h.size);
  if (size < stream_threshold) {
    out.resize(size);
    read_payload(h, trailed, out);
    return;
  }
  // A new vector must not be resize()d and then read into: its memory would
  // be written twice (zeroed, then overwritten), and on fresh pages each pass
  // costs as much as the transfer. Instead it is reserved (huge pages for a
  // large one), and each piece read into the cache-resident rbuf_ is
  // checksummed there and appended: the destination is written once.
  out.reserve(size);
  detail::prepare_receive_buffer(out.data(), size);
  std::uint32_t crc = head_crc(h.tag, h.size);
  std::size_t have = std::min(size, buffered());
  auto piece = std::span<const std::byte>(rbuf_).subspan(rpos_, have);
  crc = crc32c(piece, crc);
  out.insert(out.end(), piece.begin(), piece.end());
  rpos_ = rend_ = 0;  // all that was buffered belongs to this payload
  if (rbuf_.size() < stream_chunk) rbuf_.resize(stream_chunk);
  while (have < size) {
    ssize_t r = ::read(fd_, rbuf_.data(), std::min(rbuf_.size(), size - have));
    if (r < 0) {
      if (errno == EINTR) continue;
      detail::throw_errno("recv");
    }
    if (r == 0)
      fail_corrupt("the other end closed in the middle of a message (" + std::to_string(have) +
                   " of " + std::to_string(size) + " bytes)");
    piece = std::span<const std::byte>(rbuf_).first(static_cast<std::size_t>(r));
    crc = crc32c(piece, crc);
    out.insert(out.end(), piece.begin(), piece.end());
    have += piece.size();
  }
  if (crc != (trailed ? read_trailer() : h.crc)) fail_corrupt("corrupt frame: checksum mismatch");
}

connection::frame& connection::next_frame() {
  if (pending_) return *pending_;
  bool trailed = false;
  auto h = read_header(trailed);
  frame f;
  f.tag = h.tag;
  read_fresh_payload(h, trailed, f.payload);
  pending_ = std::move(f);
  return *pending_;
}

bool connection::has_buffered_message() const {
  if (pending_) return true;
  if (buffered() < frame_header_size) return false;
  frame_header h;
  std::memcpy(&h, rbuf_.data() + rpos_, sizeof h);
  std::uint64_t trailer = h.magic == trailed_magic ? sizeof(std::uint32_t) : 0;
  return buffered() - frame_header_size >= h.size + trailer;
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
    bool trailed = false;
    auto h = read_header(trailed);
    auto n = static_cast<std::size_t>(h.size);
    if (n <= buf.size()) {
      read_payload(h, trailed, buf);
      return n;
    }
    bytes whole;
    read_fresh_payload(h, trailed, whole);
    throw buffer_too_short(std::move(whole), buf.size());
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
  if (duplex) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      detail::throw_errno("socketpair");
    return {connection(sv[0], true, true, opts), connection(sv[1], true, true, opts)};
  }
  // A real pipe, as Python's Pipe(duplex=False): a round trip over two of
  // them costs ~0.55x one over a socketpair here (see docs/performance.md).
  if (::pipe2(sv, O_CLOEXEC) != 0) detail::throw_errno("pipe2");
  return {connection(sv[0], true, false, opts), connection(sv[1], false, true, opts)};
}

}  // namespace isola
