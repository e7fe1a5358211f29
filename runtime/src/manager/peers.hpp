// The manager's connections: its listening sockets, and the peers it accepts
// on them — the challenge exchange that authenticates each, its framing
// buffers, and the replies queued on it.
//
// Before it authenticates, a peer holds a descriptor and a fixed 128-byte
// buffer, nothing else, and counts against two caps of pending handshakes
// (per source address, and in all: protocol.hpp); a connection over either
// is told busy and closed at once, and pending ones are never evicted. At
// EMFILE the listener sheds connections through a reserve descriptor
// (net::accept_reserve) instead of spinning; on another accept error it
// sleeps for 100 ms.
//
// A TCP listener of a manager started with manager_options::tls sends the
// TLS magic in its hello; after the verdict its peers run a TLS 1.3
// handshake keyed by the handshake (sys/tls.hpp), stepped by the event loop
// like everything else and still under the handshake's deadline and caps.
// Then frames go through the session: a read drains what libssl holds
// (SSL_pending) before the loop waits on the socket again, and a write that
// wants the socket writable waits for EPOLLOUT as a plain one does.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/manager_wire.hpp"
#include "manager/timers.hpp"
#include "sys/handshake.hpp"
#include "sys/net.hpp"
#include "sys/tls.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

/// epoll keys below this are listeners (index + 1); peers' ids start here.
inline constexpr std::uint64_t peer_base = std::uint64_t{1} << 32;

struct listener {
  int fd = -1;
  std::string authkey;
  std::string where;
  bool paused = false;  // out of epoll for a moment after an accept error
  bool tls = false;     // its peers talk TLS after the handshake
};

struct peer {
  std::uint64_t id = 0;
  int fd = -1;
  std::size_t listener = 0;
  bool ready = false;  // authenticated: it talks frames now
  bool dead = false;
  bool same_program = false;
  bool want_out = false;
  bool throttled = false;  // its unsent replies passed the cap: its requests wait
  bool owner = false;    // the local connection of the process that started the manager
  bool pending = false;  // counted in the caps of pending handshakes
  std::string source;    // net::source_of its address
  handshake::challenge challenge{};
  deadlines::handle hs_timer;
  bool hs_timed = false;
  std::array<std::uint8_t, 128> response{};  // the handshake's response, read in place
  std::size_t response_have = 0;
  bytes in;  // frames: allocated only once authenticated
  std::size_t used = 0;
  bytes out;
  std::size_t out_pos = 0;
  std::string desc;
  std::unique_ptr<tls_session> tls;  // a TLS listener's peer, once it proved the key
};

class peer_table {
 public:
  /// A whole request frame (length field included) from an authenticated peer.
  using frame_handler = std::function<void(peer&, std::span<const std::byte>)>;
  /// An authenticated peer is gone: its waits end, its locks are released.
  using lost_handler = std::function<void(std::uint64_t peer_id)>;

  /// owner_pid: the process whose local connections may serve and shut down.
  peer_table(int epoll_fd, std::size_t max_message, deadlines& timers, frame_handler on_frame,
             lost_handler on_lost, int owner_pid);
  ~peer_table();
  peer_table(const peer_table&) = delete;
  peer_table& operator=(const peer_table&) = delete;

  void add_listener(int fd, std::string key, std::string where, bool tls);
  /// One epoll event, for a listener or a peer.
  void on_event(std::uint64_t key, std::uint32_t events);
  /// Queues a reply to peer_id's request req (nothing if the peer is gone).
  void reply(std::uint64_t peer_id, std::uint64_t req, mgr_status st,
             std::span<const std::byte> payload = {});
  /// A deadline of the table's passed: a peer's handshake (peer_id), or a
  /// paused listener's pause (a key below peer_base).
  void timer_fired(std::uint64_t id);
  /// Drops p for breaking the protocol, with the reason in the log.
  void reject(peer& p, const std::string& why);
  /// After a wake-up: sends what was queued, forgets the peers that died.
  void flush_marked();
  void reap_dead();
  /// Before exiting: a best-effort last flush to every live peer.
  void flush_all();

  std::uint64_t connections() const;
  std::uint64_t auth_failures() const noexcept { return auth_failures_; }
  std::uint64_t dropped() const noexcept { return dropped_; }
  std::uint64_t refused() const noexcept { return refused_; }

 private:
  void accept_all(std::size_t li);
  void admit(std::size_t li, int fd, const sockaddr_storage& ss);
  void pause_listener(std::size_t li);
  void leave_pending(peer& p);
  void on_readable(peer& p);
  void tls_handshake(peer& p);
  bool tls_read(peer& p);
  void want_output(peer& p, bool on);
  std::optional<std::size_t> receive(peer& p, void* into, std::size_t n);
  std::size_t take_frames(peer& p, std::size_t pos);
  void resize_input(peer& p);
  bool authenticate(peer& p);
  void flush(peer& p);
  void consume(peer& p);
  void update_events(peer& p);
  std::size_t unsent(const peer& p) const { return p.out.size() - p.out_pos; }
  void drop(peer& p);
  void mark(std::uint64_t id) { dirty_.push_back(id); }
  static std::string describe_peer(const sockaddr_storage& ss);

  int ep_;
  std::size_t max_message_;
  // Unsent reply bytes past which a peer's requests wait (checked before each
  // request, so one reply larger than this still goes out whole).
  std::size_t out_cap_;
  deadlines& timers_;
  frame_handler on_frame_;
  lost_handler on_lost_;
  std::vector<listener> listeners_;
  std::unordered_map<std::uint64_t, std::unique_ptr<peer>> peers_;
  std::uint64_t next_peer_ = peer_base;
  std::vector<std::uint64_t> dirty_;
  std::vector<std::uint64_t> dead_;
  std::uint64_t auth_failures_ = 0, dropped_ = 0, refused_ = 0;
  int owner_pid_;
  net::accept_reserve reserve_;
  std::size_t pending_ = 0;
  std::unordered_map<std::string, std::size_t> pending_by_source_;
};

}  // namespace isola::detail::mgr
