// The game server's parts and what they say to each other: the TCP records
// between the load client and the server, the messages between the root, the
// room actors and the session actors, and the load client's report.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <isola/isola.hpp>

namespace game_server {

using steady = std::chrono::steady_clock;

// ---------------------------------------------------------------- the wire
// TCP records between the client and the server: 16 bytes, host byte order
// (loopback only).
struct record {
  std::uint32_t type;
  std::uint32_t seq;
  std::uint64_t value;
};
static_assert(sizeof(record) == 16);
enum : std::uint32_t {
  rec_move = 1,      // client -> session: seq, value = first send time (ns)
  rec_welcome = 2,   // room -> client: seq = next move the room expects, value = session pid
  rec_ack = 3,       // room -> mover: seq, value echoed
  rec_opponent = 4,  // room -> the other player: the opponent's move seq, value echoed
};

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

/// Writes the whole record (blocking socket). False if the peer is gone.
inline bool put(int fd, const record& r) {
  const char* p = reinterpret_cast<const char*>(&r);
  std::size_t left = sizeof r;
  while (left > 0) {
    ssize_t n = ::send(fd, p, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

// ---------------------------------------------------------------- messages
/// A copyable handle to one end of a pipe, so that it can be an argument of
/// spawn / child_spec::actor (which keep their arguments for restarts).
struct shared_end {
  std::shared_ptr<isola::connection> c;
  template <class A>
  void save(A& ar) const {
    c->save(ar);
  }
  template <class A>
  void load(A& ar) {
    c = std::make_shared<isola::connection>();
    c->load(ar);
  }
};

struct go {
  template <class A>
  void serialize(A&) {}
};
struct ready {  // a new session incarnation, to the root over its fresh pipe
  isola::actor self;
  template <class A>
  void serialize(A& ar) {
    ar(self);
  }
};
struct adopt {  // root -> room: the next descriptor on your control pipe is this seat's client
  std::uint32_t table = 0;
  std::uint8_t seat = 0;
  template <class A>
  void serialize(A& ar) {
    ar(table, seat);
  }
};
struct joined {  // session -> room: (re)started, greet the client
  std::uint32_t table = 0;
  std::uint8_t seat = 0;
  int pid = 0;
  template <class A>
  void serialize(A& ar) {
    ar(table, seat, pid);
  }
};
struct relay_move {  // session -> room
  std::uint32_t table = 0;
  std::uint8_t seat = 0;
  std::uint32_t seq = 0;
  std::uint64_t t0 = 0;
  template <class A>
  void serialize(A& ar) {
    ar(table, seat, seq, t0);
  }
};
struct left_table {  // session -> room: the client hung up
  std::uint32_t table = 0;
  std::uint8_t seat = 0;
  template <class A>
  void serialize(A& ar) {
    ar(table, seat);
  }
};
struct stats_request {
  template <class A>
  void serialize(A&) {}
};
struct room_stats {
  std::uint64_t relayed = 0, duplicates = 0, out_of_order = 0;
  template <class A>
  void serialize(A& ar) {
    ar(relayed, duplicates, out_of_order);
  }
};
struct session_args {
  int slot = 0;
  std::uint32_t table = 0;
  std::uint8_t seat = 0;
  isola::actor room;
  template <class A>
  void serialize(A& ar) {
    ar(slot, table, seat, room);
  }
};

// ---------------------------------------------------------------- actors (actors.cpp)
isola::behavior make_room(shared_end ctl);
isola::behavior make_session(shared_end ctl, session_args a);

// ---------------------------------------------------------------- load client (load_client.cpp)
struct client_config {
  int port = 0;
  int sessions = 0;
  int moves = 0;
  int kills = 0;
  double deadline_s = 120;
  template <class A>
  void serialize(A& ar) {
    ar(port, sessions, moves, kills, deadline_s);
  }
};

struct kill_info {
  int slot = 0, old_pid = 0, new_pid = 0, at_move = 0;
  double recover_ms = -1;  // kill -> welcome of the new incarnation
  template <class A>
  void serialize(A& ar) {
    ar(slot, old_pid, new_pid, at_move, recover_ms);
  }
};

struct client_report {
  int sessions = 0, finished = 0, finished_killed = 0;
  std::uint64_t acked = 0, relayed = 0;
  double play_s = 0, connect_s = 0;
  double ack_p50 = 0, ack_p99 = 0, relay_p50 = 0, relay_p99 = 0;  // ms
  std::vector<kill_info> kills;
  int restarted_sessions = 0;  // sessions that got more than one welcome
  int unaffected = 0, not_killed = 0;
  std::uint64_t resent = 0, timeouts = 0, duplicate_acks = 0, bad_order = 0;
  std::vector<std::string> problems;
  template <class A>
  void serialize(A& ar) {
    ar(sessions, finished, finished_killed, acked, relayed, play_s, connect_s, ack_p50, ack_p99,
       relay_p50, relay_p99, kills, restarted_sessions, unaffected, not_killed, resent, timeouts,
       duplicate_acks, bad_order, problems);
  }
};

/// The load client's process: plays every session, kills some, and sends
/// its report to the root.
int run_client(client_config cfg, isola::connection report_to);

}  // namespace game_server
