// isola/connection.hpp — one end of a pipe (Python's multiprocessing.connection).
//
//   auto [left, right] = isola::pipe();
//   left.send(std::string("hello"));
//   auto s = right.recv<std::string>();
//
// Messages are frames (isola/frame.hpp): a checked header, a type tag and the
// cereal encoding; a send_bytes() of 1 MiB or more streams with its checksum
// after the payload instead (docs/decisions.md, Channels). A duplex pipe is
// an AF_UNIX stream socketpair; a simplex one is a pipe2() (one end reads,
// the other writes), which costs less per message. What the other end sees:
// - Messages arrive whole and in order. A reader never sees part of one.
// - recv<T>() of a message of another type is a type_error naming both types;
//   the message stays in the connection for a recv of the right type.
// - Corrupt bytes are a decode_error, after which the connection is closed.
// - When every copy of the other end is closed (in every process), recv()
//   throws eof_error once the buffered messages are read; send() to such an
//   end is an os_error (EPIPE), never a SIGPIPE death (a process that gets
//   the write end of a simplex pipe ignores SIGPIPE from then on, as Python
//   does from startup; see docs/decisions.md).
// - A message larger than max_message_size is refused by send() (value_error,
//   nothing written) and by recv() (value_error, the connection closed for
//   reading: its length could also be corruption).
// - A simplex pipe's ends refuse the wrong direction with value_error.
// - send_handle/recv_handle need a socket: over a duplex pipe (or any
//   connection made from an AF_UNIX socket) they work; over a simplex one they
//   are a value_error, as they fail in Python.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/handle_transfer.hpp"
#include "isola/error.hpp"
#include "isola/frame.hpp"
#include "isola/message.hpp"

namespace isola {

struct connection_options {
  /// Largest payload send() accepts and recv() reads. 1 GiB by default.
  std::size_t max_message_size = std::size_t{1} << 30;
};

/// The wire name of send_bytes() payloads.
struct raw_bytes_tag {};

class connection {
 public:
  using duration = std::chrono::duration<double>;

  /// A closed connection.
  connection() = default;
  /// Adopts fd: an AF_UNIX stream socket, or the read or write end of a pipe.
  connection(int fd, bool readable, bool writable, connection_options opts = {});
  ~connection();
  connection(connection&& o) noexcept;
  connection& operator=(connection&& o) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Sends v as one message.
  template <class T>
  void send(const T& v) {
    auto& buf = send_buffer();
    buf.clear();
    encode_frame_into(v, buf);
    send_frame(buf);
  }

  /// Receives one message of type T (or any type, as message).
  template <class T = message>
  T recv() {
    auto& f = next_frame();
    if constexpr (std::is_same_v<T, message>) {
      message m(f.tag, std::move(f.payload));
      pending_.reset();
      return m;
    } else {
      if (f.tag != type_tag<T>()) detail::throw_type_mismatch(type_tag<T>(), type_name<T>(), f.tag);
      T v = decode<T>(f.payload);
      pending_.reset();
      return v;
    }
  }

  /// Whether a message can be read without blocking, waiting at most timeout
  /// (std::nullopt: forever).
  bool poll(std::optional<duration> timeout = duration::zero());

  /// Sends raw bytes as one message.
  void send_bytes(std::span<const std::byte> data);
  void send_bytes(std::string_view s) { send_bytes(std::as_bytes(std::span(s.data(), s.size()))); }

  /// The payload of the next message, whatever its type. A message longer
  /// than maxlength is a value_error and stays in the connection.
  std::vector<std::byte> recv_bytes(std::size_t maxlength = SIZE_MAX);

  /// Reads the next message's payload into buf; returns its size. If buf is
  /// too small, throws buffer_too_short carrying the whole message (which is
  /// then no longer in the connection), as Python does.
  std::size_t recv_bytes_into(std::span<std::byte> buf);

  /// Passes a descriptor (a socket, a file) to the process at the other end.
  /// The caller keeps its own copy. Needs a socket (a duplex pipe).
  void send_handle(int fd);
  /// A descriptor sent with send_handle, owned by the caller (O_CLOEXEC).
  int recv_handle();

  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  bool readable() const noexcept { return readable_; }
  bool writable() const noexcept { return writable_; }
  /// process_error... value_error if closed.
  int fileno() const;

  /// Messages already read from the socket and not yet returned.
  bool has_buffered_message() const;

  template <class Archive>
  void save(Archive& ar) const {
    ar(detail::export_fd(fd_), readable_, writable_,
       static_cast<std::uint64_t>(opts_.max_message_size));
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    std::uint64_t max = 0;
    bool readable = false, writable = false;
    ar(index, readable, writable, max);
    close();
    adopt(detail::import_fd(index), readable, writable);
    opts_.max_message_size = static_cast<std::size_t>(max);
  }

 private:
  struct frame {
    std::uint64_t tag = 0;
    bytes payload;
  };
  static bytes& send_buffer();
  static void release_in_child(void* self) noexcept;
  void adopt(int fd, bool readable, bool writable);
  void send_frame(std::span<const std::byte> frame_bytes);
  void send_raw(std::span<const std::byte> a, std::span<const std::byte> b, int pass_fd = -1);
  void require_socket(const char* what) const;
  frame& next_frame();
  void grow_buffers();
  frame_header read_header(bool& trailed);
  std::uint32_t read_trailer();
  void read_payload(const frame_header& h, bool trailed, std::span<std::byte> into);
  void read_fresh_payload(const frame_header& h, bool trailed, bytes& out);
  bool fill();  // reads more into rbuf_ (blocking); false on EOF
  std::size_t buffered() const noexcept { return rend_ - rpos_; }
  void require_readable() const;
  void require_writable() const;
  [[noreturn]] void fail_corrupt(const std::string& what);

  int fd_ = -1;
  bool readable_ = false;
  bool writable_ = false;
  bool socket_ = false;  // else a pipe end: read()/writev(), no descriptors
  bool grown_ = false;   // a large message made us enlarge the kernel's buffer
  connection_options opts_;
  bytes rbuf_;
  std::size_t rpos_ = 0, rend_ = 0;
  std::optional<frame> pending_;
  std::deque<int> received_fds_;
};

/// Python's Pipe(duplex): two connected ends. With duplex = false the first
/// end only receives and the second only sends.
std::pair<connection, connection> pipe(bool duplex = true, connection_options opts = {});

}  // namespace isola

ISOLA_TYPE_NAME(isola::raw_bytes_tag, "bytes")
