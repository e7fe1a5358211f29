// The TLS scribe of tls_scribe.hpp.
#include "remote/tls_scribe.hpp"

#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/native_socket.hpp>
#include <caf/io/network/stream_impl.hpp>

#include <utility>

#include "isola/logging.hpp"
#include "sys/tls.hpp"

namespace isola::detail {

namespace {

namespace cnet = caf::io::network;

/// stream_impl's policy: what CAF's stream calls to move bytes.
struct tls_policy {
  explicit tls_policy(std::shared_ptr<tls_session> s) : s_(std::move(s)) {}

  cnet::rw_state read_some(std::size_t& result, cnet::native_socket, void* buf, std::size_t len) {
    return state(s_->read_some(buf, len, result), "read");
  }

  cnet::rw_state write_some(std::size_t& result, cnet::native_socket, const void* buf,
                            std::size_t len) {
    result = 0;
    // Nothing to write: CAF takes the socket off its write set.
    if (len == 0) return cnet::rw_state::indeterminate;
    return state(s_->write_some(buf, len, result), "write");
  }

  /// The stream stops reading after a number of reads in a row; bytes that
  /// libssl already took from the socket would then wait for the next byte
  /// on the socket, which may never come (the peer waits for our answer).
  bool must_read_more(cnet::native_socket, std::size_t) { return s_->has_pending(); }

 private:
  cnet::rw_state state(tls_io r, const char* op) {
    switch (r) {
      case tls_io::done:
      // Nothing moved now; the stream waits for the socket (for a write it
      // stays in the write set, for a read it goes back to polling).
      case tls_io::want_read:
      case tls_io::want_write: return cnet::rw_state::success;
      case tls_io::closed: return cnet::rw_state::failure;
      case tls_io::failed:
        get_logger().warning(std::string("isola::node: TLS ") + op +
                             " failed, the link is dropped: " + s_->why());
        return cnet::rw_state::failure;
    }
    return cnet::rw_state::failure;
  }

  std::shared_ptr<tls_session> s_;
};

/// CAF's scribe_impl with the TLS policy (as libcaf_openssl's scribe_impl).
class tls_scribe final : public caf::io::scribe {
 public:
  tls_scribe(cnet::default_multiplexer& mx, int fd, std::shared_ptr<tls_session> s)
      : caf::io::scribe(cnet::conn_hdl_from_socket(fd)), stream_(mx, fd, std::move(s)) {}

  void configure_read(caf::io::receive_policy::config config) override {
    stream_.configure_read(config);
    if (!launched_) launch();
  }
  void ack_writes(bool enable) override { stream_.ack_writes(enable); }
  std::vector<char>& wr_buf() override { return stream_.wr_buf(); }
  std::vector<char>& rd_buf() override { return stream_.rd_buf(); }
  void graceful_shutdown() override {
    stream_.graceful_shutdown();
    detach(&stream_.backend(), false);
  }
  void flush() override { stream_.flush(this); }
  std::string addr() const override {
    auto x = cnet::remote_addr_of_fd(stream_.fd());
    return x ? *x : std::string();
  }
  std::uint16_t port() const override {
    auto x = cnet::remote_port_of_fd(stream_.fd());
    return x ? *x : 0;
  }
  void launch() {
    launched_ = true;
    stream_.start(this);
  }
  void add_to_loop() override { stream_.activate(this); }
  void remove_from_loop() override { stream_.passivate(); }

 private:
  bool launched_ = false;
  cnet::stream_impl<tls_policy> stream_;
};

}  // namespace

caf::io::scribe_ptr make_tls_scribe(cnet::default_multiplexer& mx, int fd,
                                    std::shared_ptr<tls_session> s) {
  return caf::make_counted<tls_scribe>(mx, fd, std::move(s));
}

}  // namespace isola::detail
