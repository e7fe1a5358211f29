// Scenario 2 of DESIGN.md: game-server session handling.
//
//   game_server [sessions=40] [moves=50] [kills=3] [rooms=4]
//   game_server 500 100 5 8          # the long run (500 concurrent sessions)
//
// A TCP server on 127.0.0.1 where every client connection is served by its
// own session actor process, sessions live under a supervisor, and room
// actors relay moves between the two players of each table. The same program
// starts a load client (a separate process) that opens `sessions` concurrent
// connections, plays `moves` moves on each, and SIGKILLs `kills` session
// processes mid-game (by pid). At the end it prints a summary and checks that
// every other session was unaffected, that the killed ones were restarted and
// finished their game, and that nothing leaked: the root's open descriptors
// and its descendant processes are back to what they were before the first
// client connected.
//
// The design (what runs where):
//
//   load client (process)           root                         actors
//   ---------------------           ----                         ------
//   500 TCP sockets, epoll   --->   listener (poll)
//                                   accept -> client fd (kept)
//                                   room ctl: send_handle(fd) --> room-r: adopt{table, seat}
//                                   start_child(session-i)  ----> session-i (supervised)
//                                   ctl-i  <--- "here is a fresh pipe" (send_handle)
//                                   fresh pipe: send_handle(fd) -> session reads moves
//   move{seq} ------------------------------------------------->  session-i --relay_move--> room-r
//   <--------------- ack{seq} to the mover, opponent{seq} to the other player --------------  room-r
//
// - An actor process is single-threaded and its loop serves the mailbox, so
//   a session cannot both block on its socket and serve messages. A session
//   therefore never receives messages after it has started: its behavior has
//   one handler, for a `go` it sends itself while its behavior is built, and
//   that handler is the session's whole life: get the socket, read moves,
//   forward them to the room (an actor send), exit normally on EOF.
// - The room is the only writer to client sockets (the session only reads):
//   acks to the mover, the move to the opponent, and a welcome{pid, next seq}
//   each time a session (re)joins. One writer per socket: no interleaving.
//   The room gets each client's descriptor from the root over its own control
//   pipe (send_handle) followed by an adopt message in its mailbox.
// - The root keeps its own copy of every client descriptor for the life of
//   the session slot. When a session is killed, the client's TCP connection
//   stays open; the supervisor restarts the session (transient child, same
//   spec, same control-pipe end), and the new incarnation gets the socket
//   again. The handshake goes over a pipe the incarnation creates itself:
//   it makes a socketpair, writes ready{its actor handle} into one end and
//   passes the other end to the root over the long-lived control pipe; the
//   root answers over that fresh pipe with the client descriptor. Nothing
//   stale can ever be read by a later incarnation (the root never writes to
//   the long-lived pipe), and a handshake from an incarnation that died
//   half-way just fails to deliver (EPIPE, ignored).
// - What the client sees of a kill: a pause, then a second welcome with the
//   new pid and the next sequence number the room expects. Moves carry
//   sequence numbers; a move the dead session read but never forwarded is
//   re-sent by the client on the welcome, and the room drops (and re-acks)
//   any move it has already relayed. A re-send after a 5 s silence is the
//   backstop (counted: it must not happen to a session that was not killed).
// - Why not pass the control pipe end as a plain isola::connection argument:
//   spawn and child_spec::actor keep their arguments in a std::function (a
//   restart re-uses them), so arguments must be copyable, and connection is
//   move-only. `shared_end` below is a copyable wrapper (a shared_ptr to the
//   connection) whose save/load forward to the connection's own.
// - The root learns of each incarnation from its handshake (ready carries
//   the actor handle) and monitors it: a down with an abnormal reason is a
//   killed session (reported, and the supervisor restarts it); a normal one
//   means the client hung up, and the slot is closed: delete_child (which
//   drops the spec and its pipe end), close the root's client descriptor and
//   control pipe. Leaks are checked against a baseline taken with the server
//   up and idle (listener, rooms, supervisor): the root's descriptor count
//   and its descendant processes must come back to it.
// - Descriptor budget: the root holds about 9 descriptors per live session
//   (client socket, two control-pipe ends, and the actor layer's pidfd,
//   control channel and mailbox), so it raises its soft RLIMIT_NOFILE to the
//   hard limit (500 sessions: ~4600 descriptors).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <isola/isola.hpp>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

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

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

/// Writes the whole record (blocking socket). False if the peer is gone.
bool put(int fd, const record& r) {
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

// ---------------------------------------------------------------- room actor
struct table_state {
  int fd[2] = {-1, -1};
  std::uint32_t last[2] = {0, 0};  // last move relayed, per seat
  std::vector<record> pending[2];  // for a seat whose descriptor has not come yet
};
struct room_state {
  std::unordered_map<std::uint32_t, table_state> tables;
  room_stats stats;
};

void deliver(table_state& t, int seat, const record& r) {
  if (t.fd[seat] >= 0)
    put(t.fd[seat], r);  // a client that has gone: nothing to do
  else
    t.pending[seat].push_back(r);
}

isola::behavior make_room(shared_end ctl) {
  auto st = std::make_shared<room_state>();
  return {
      [ctl, st](const adopt& m) {
        int fd = ctl.c->recv_handle();  // sent just before this message
        auto& t = st->tables[m.table];
        if (t.fd[m.seat] >= 0) ::close(t.fd[m.seat]);
        t.fd[m.seat] = fd;
        for (auto& r : t.pending[m.seat]) put(fd, r);
        t.pending[m.seat].clear();
      },
      [st](const joined& m) {
        auto& t = st->tables[m.table];
        deliver(t, m.seat, {rec_welcome, t.last[m.seat] + 1, static_cast<std::uint64_t>(m.pid)});
      },
      [st](const relay_move& m) {
        auto& t = st->tables[m.table];
        std::uint32_t& last = t.last[m.seat];
        if (m.seq == last + 1) {
          last = m.seq;
          deliver(t, m.seat, {rec_ack, m.seq, m.t0});
          deliver(t, 1 - m.seat, {rec_opponent, m.seq, m.t0});
          ++st->stats.relayed;
        } else if (m.seq <= last) {  // already relayed: a re-send after a restart
          deliver(t, m.seat, {rec_ack, m.seq, m.t0});
          ++st->stats.duplicates;
        } else {
          ++st->stats.out_of_order;
        }
      },
      [st](const left_table& m) {
        auto it = st->tables.find(m.table);
        if (it == st->tables.end()) return;
        auto& t = it->second;
        if (t.fd[m.seat] >= 0) ::close(t.fd[m.seat]);
        t.fd[m.seat] = -1;
        if (t.fd[0] < 0 && t.fd[1] < 0 && t.pending[0].empty() && t.pending[1].empty())
          st->tables.erase(it);
      },
      [st](const stats_request&) { return st->stats; },
  };
}

// ---------------------------------------------------------------- session actor
[[noreturn]] void run_session(isola::connection& ctl, const session_args& a) {
  // The handshake: a fresh pipe for this incarnation only.
  auto [mine, theirs] = isola::pipe();
  mine.send(ready{isola::this_actor::self()});
  ctl.send_handle(theirs.fileno());
  theirs.close();
  const int fd = mine.recv_handle();  // the client's socket
  mine.close();
  a.room.send(joined{a.table, a.seat, static_cast<int>(::getpid())});

  alignas(record) char buf[64 * sizeof(record)];
  std::size_t have = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the client hung up
    have += static_cast<std::size_t>(n);
    std::size_t used = 0;
    for (; have - used >= sizeof(record); used += sizeof(record)) {
      record r;
      std::memcpy(&r, buf + used, sizeof r);
      if (r.type == rec_move) a.room.send(relay_move{a.table, a.seat, r.seq, r.value});
    }
    std::memmove(buf, buf + used, have - used);
    have -= used;
  }
  a.room.send(left_table{a.table, a.seat});
  ::close(fd);
  isola::exit(0);  // a normal exit: the (transient) session is not restarted
}

isola::behavior make_session(shared_end ctl, session_args a) {
  // The session's work loop cannot run here (the supervisor waits for the
  // behavior to be built), so it runs in the handler of a message to itself.
  isola::this_actor::self().send(go{});
  return {[ctl, a](const go&) { run_session(*ctl.c, a); }};
}

// ---------------------------------------------------------------- load client
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

struct csession {
  int fd = -1;
  char buf[64 * sizeof(record)];
  std::size_t have = 0;
  int pid = 0, welcomes = 0;
  std::uint32_t next = 1;         // next move to send
  std::uint32_t outstanding = 0;  // move awaiting its ack (0: none)
  std::int64_t first_sent = 0, last_sent = 0;
  std::uint32_t acked = 0, opp = 0;
  int timeouts = 0;
  int kill_index = -1;  // into report.kills
  std::int64_t killed_at = 0;
  bool done = false;
};

double percentile_ms(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1e6;
}

int run_client(client_config cfg, isola::connection report_to) {
  client_report rep;
  rep.sessions = cfg.sessions;
  const std::int64_t resend_after = 5'000'000'000;  // ns
  const auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                            std::chrono::duration<double>(cfg.deadline_s));
  std::vector<csession> s(static_cast<std::size_t>(cfg.sessions));
  std::vector<std::int64_t> ack_lat, relay_lat;
  ack_lat.reserve(static_cast<std::size_t>(cfg.sessions) * static_cast<std::size_t>(cfg.moves));
  relay_lat.reserve(ack_lat.capacity());

  // Which sessions die, and after how many acked moves: spread over the slots.
  for (int k = 0; k < cfg.kills; ++k) {
    int slot = static_cast<int>((static_cast<long>(k) * cfg.sessions) / cfg.kills + 1) % cfg.sessions;
    s[static_cast<std::size_t>(slot)].kill_index = k;
    rep.kills.push_back({slot, 0, 0, std::max(1, cfg.moves / 2), -1});
  }

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) throw std::runtime_error("epoll_create1 failed");
  auto t_connect = steady::now();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(cfg.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (std::size_t i = 0; i < s.size(); ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("client: connect " + std::to_string(i) + ": " + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    s[i].fd = fd;
  }

  auto send_move = [&](csession& c, std::uint32_t seq, bool again) {
    std::int64_t t = now_ns();
    if (!again) c.first_sent = t;
    c.last_sent = t;
    c.outstanding = seq;
    record r{rec_move, seq, static_cast<std::uint64_t>(c.first_sent)};
    if (::send(c.fd, &r, sizeof r, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof r))
      rep.problems.push_back("send failed on session " + std::to_string(&c - s.data()) + ": " +
                             std::strerror(errno));
  };
  bool playing = false;
  int welcomed = 0, finished = 0;

  auto on_record = [&](std::size_t i, const record& r) {
    csession& c = s[i];
    std::int64_t t = now_ns();
    switch (r.type) {
      case rec_welcome:
        if (++c.welcomes == 1) {
          c.pid = static_cast<int>(r.value);
          ++welcomed;
        } else {
          if (c.kill_index >= 0) {
            auto& k = rep.kills[static_cast<std::size_t>(c.kill_index)];
            k.new_pid = static_cast<int>(r.value);
            k.recover_ms = static_cast<double>(t - c.killed_at) / 1e6;
          }
          c.pid = static_cast<int>(r.value);
          // The move in flight may have died with the old session.
          if (c.outstanding != 0 && c.outstanding >= r.seq) {
            send_move(c, c.outstanding, true);
            ++rep.resent;
          }
        }
        break;
      case rec_ack:
        if (r.seq != c.outstanding) {
          ++rep.duplicate_acks;
          break;
        }
        ack_lat.push_back(t - c.first_sent);
        ++c.acked;
        c.outstanding = 0;
        if (c.acked < static_cast<std::uint32_t>(cfg.moves)) {
          send_move(c, ++c.next, false);
          if (c.kill_index >= 0 && c.killed_at == 0 &&
              c.acked == static_cast<std::uint32_t>(rep.kills[static_cast<std::size_t>(c.kill_index)].at_move)) {
            // Kill the session with this move in flight.
            auto& k = rep.kills[static_cast<std::size_t>(c.kill_index)];
            k.old_pid = c.pid;
            c.killed_at = now_ns();
            if (::kill(c.pid, SIGKILL) != 0)
              rep.problems.push_back("kill(" + std::to_string(c.pid) + "): " + std::strerror(errno));
          }
        }
        break;
      case rec_opponent:
        if (r.seq != c.opp + 1) {
          ++rep.bad_order;
          break;
        }
        ++c.opp;
        relay_lat.push_back(t - static_cast<std::int64_t>(r.value));
        break;
      default:
        rep.problems.push_back("unknown record type " + std::to_string(r.type));
    }
    if (playing && !c.done && c.acked == static_cast<std::uint32_t>(cfg.moves) &&
        c.opp == static_cast<std::uint32_t>(cfg.moves)) {
      c.done = true;
      ++finished;
      ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);  // the session sees EOF and ends normally
      c.fd = -1;
    }
  };

  auto pump = [&](int timeout_ms) {
    epoll_event evs[256];
    int n = ::epoll_wait(ep, evs, 256, timeout_ms);
    for (int e = 0; e < n; ++e) {
      std::size_t i = evs[e].data.u32;
      csession& c = s[i];
      while (c.fd >= 0) {
        ssize_t got = ::read(c.fd, c.buf + c.have, sizeof c.buf - c.have);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (got <= 0) {
          rep.problems.push_back("session " + std::to_string(i) + ": the server closed the connection");
          ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
          ::close(c.fd);
          c.fd = -1;
          break;
        }
        c.have += static_cast<std::size_t>(got);
        std::size_t used = 0;
        for (; c.have - used >= sizeof(record); used += sizeof(record)) {
          record r;
          std::memcpy(&r, c.buf + used, sizeof r);
          on_record(i, r);
          if (c.fd < 0) break;
        }
        if (c.fd < 0) break;
        std::memmove(c.buf, c.buf + used, c.have - used);
        c.have -= used;
      }
    }
  };

  // Phase 1: every session connected and greeted.
  while (welcomed < cfg.sessions && steady::now() < deadline) pump(100);
  rep.connect_s = std::chrono::duration<double>(steady::now() - t_connect).count();
  if (welcomed < cfg.sessions)
    rep.problems.push_back("only " + std::to_string(welcomed) + " sessions were greeted");

  // Phase 2: play.
  playing = true;
  auto t_play = steady::now();
  for (auto& c : s)
    if (c.fd >= 0) send_move(c, c.next, false);
  while (finished < cfg.sessions && steady::now() < deadline) {
    pump(100);
    std::int64_t t = now_ns();
    for (auto& c : s)
      if (c.fd >= 0 && c.outstanding != 0 && t - c.last_sent > resend_after) {
        ++c.timeouts;
        ++rep.timeouts;
        send_move(c, c.outstanding, true);
      }
  }
  rep.play_s = std::chrono::duration<double>(steady::now() - t_play).count();

  rep.finished = finished;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto& c = s[i];
    rep.acked += c.acked;
    rep.relayed += c.opp;
    if (c.welcomes > 1) ++rep.restarted_sessions;
    if (c.kill_index >= 0) {
      if (c.done) ++rep.finished_killed;
      if (c.welcomes != 2)
        rep.problems.push_back("killed session " + std::to_string(i) + " was greeted " +
                               std::to_string(c.welcomes) + " times (expected 2)");
    } else {
      ++rep.not_killed;
      if (c.done && c.welcomes == 1 && c.timeouts == 0)
        ++rep.unaffected;
      else
        rep.problems.push_back("session " + std::to_string(i) + " (not killed): " +
                               std::to_string(c.acked) + " acked, " + std::to_string(c.opp) +
                               " opponent moves, " + std::to_string(c.welcomes) + " welcomes, " +
                               std::to_string(c.timeouts) + " timeouts");
    }
    if (c.fd >= 0) ::close(c.fd);
  }
  ::close(ep);
  rep.ack_p50 = percentile_ms(ack_lat, 0.50);
  rep.ack_p99 = percentile_ms(ack_lat, 0.99);
  rep.relay_p50 = percentile_ms(relay_lat, 0.50);
  rep.relay_p99 = percentile_ms(relay_lat, 0.99);
  report_to.send(rep);
  return 0;
}

// ---------------------------------------------------------------- root helpers
/// Open descriptors of this process (the directory stream's own excluded).
int count_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;
}

/// Processes descended from this one (children, grandchildren, ...).
int count_descendants() {
  std::unordered_map<int, std::vector<int>> kids;
  DIR* d = ::opendir("/proc");
  if (!d) return -1;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(line.substr(close_paren + 2));
    char state = 0;
    int ppid = 0;
    rest >> state >> ppid;
    kids[ppid].push_back(std::atoi(e->d_name));
  }
  ::closedir(d);
  int n = 0;
  std::vector<int> todo{static_cast<int>(::getpid())};
  while (!todo.empty()) {
    int p = todo.back();
    todo.pop_back();
    for (int k : kids[p]) {
      ++n;
      todo.push_back(k);
    }
  }
  return n;
}

/// Waits (at most t) until both counts are what they were (fds < 0: any);
/// returns them.
std::pair<int, int> settle_to(int procs, int fds, std::chrono::milliseconds t) {
  auto until = steady::now() + t;
  for (;;) {
    int p = count_descendants(), f = count_fds();
    if ((p == procs && (fds < 0 || f == fds)) || steady::now() >= until) return {p, f};
    ::poll(nullptr, 0, 5);  // re-check the condition every 5 ms until the deadline
  }
}

struct exit_record {
  int pid = 0;
  isola::exit_reason reason;
};

struct slot {
  int client_fd = -1;
  isola::connection ctl;  // root end of the session's long-lived control pipe
  isola::actor current;   // the running incarnation, once it said ready
  std::optional<isola::future<isola::down>> mon;
  std::vector<exit_record> abnormal;  // incarnations that died
  std::vector<int> pids;              // every incarnation's pid
  bool finished = false;
};

std::string fmt_ms(double ms) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(ms < 10 ? 2 : 1) << ms << " ms";
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  // Before the runtime, so that the forkserver zygote (and every actor) has
  // the same limit as the root: the root holds several descriptors per session.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  isola::runtime rt{argc, argv};

  const int sessions = (std::max(2, argc > 1 ? std::atoi(argv[1]) : 40) + 1) / 2 * 2;  // even: 2 per table
  const int moves = std::max(1, argc > 2 ? std::atoi(argv[2]) : 50);
  // A session is killed with its move half-way through the game in flight: that needs 2 moves.
  const int kills = moves < 2 ? 0 : std::clamp(argc > 3 ? std::atoi(argv[3]) : 3, 0, sessions);
  const int nrooms = std::max(1, argc > 4 ? std::atoi(argv[4]) : 4);
  const double deadline_s = 60 + sessions * moves / 2000.0;

  const int procs_before = count_descendants();

  // The listener.
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096) != 0) {
    std::perror("listen");
    return 1;
  }
  socklen_t alen = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &alen);
  const int port = ntohs(addr.sin_port);

  // Rooms, each with a control pipe the root passes client descriptors over.
  std::vector<isola::actor> rooms;
  std::vector<isola::connection> room_ctl;
  for (int r = 0; r < nrooms; ++r) {
    auto [root_end, room_end] = isola::pipe();
    rooms.push_back(isola::spawn(isola::spawn_options{.name = "room-" + std::to_string(r)}, make_room,
                                 shared_end{std::make_shared<isola::connection>(std::move(room_end))}));
    room_ctl.push_back(std::move(root_end));
  }

  int result = 0;
  {
    isola::supervisor sup({.strategy = isola::strategy::one_for_one,
                           .intensity = kills + 10,
                           .period = 60s,
                           .name = "sessions"});

    // Every room is up (this also gives the root thread its reply inbox,
    // which it keeps: a fixed cost, not one per session).
    for (auto& room : rooms) room.request<room_stats>(stats_request{}).get(10s);
    // The baseline: the server is up and idle (rooms, supervisor, listener).
    const int procs_base = count_descendants(), fds_base = count_fds();
    int procs_peak = 0, fds_peak = 0;

    std::vector<slot> slots;
    slots.reserve(static_cast<std::size_t>(sessions));
    auto [report_rx, report_tx] = isola::pipe(false);
    std::optional<client_report> report;
    bool client_ended = false;
    int ready_slots = 0;
    {
      isola::process client(isola::process_options{.name = "load-client",
                                                   .method = isola::start_method::forkserver},
                            run_client,
                            client_config{port, sessions, moves, kills, deadline_s},
                            std::move(report_tx));
      client.start();
      std::cout << "game server on 127.0.0.1:" << port << ": " << sessions << " sessions ("
                << sessions / 2 << " tables in " << nrooms << " rooms), " << moves
                << " moves each, " << kills << " sessions to kill" << std::endl;

      auto on_handshake = [&](std::size_t i) {
        slot& sl = slots[i];
        isola::connection fresh(sl.ctl.recv_handle(), true, true);
        ready rd;
        try {
          // Written before the pipe end was passed, so it is there (or, if
          // the incarnation died, the pipe is closed: eof_error).
          if (!fresh.poll(std::chrono::seconds(1))) return;
          rd = fresh.recv<ready>();
        } catch (const isola::error&) {
          return;  // an incarnation that died during its handshake; its successor will ask again
        }
        if (sl.mon && sl.current != rd.self) {
          // The previous incarnation: the supervisor restarted it, so it has ended.
          isola::down d = sl.mon->get(10s);
          if (d.reason.abnormal()) sl.abnormal.push_back({d.who.pid(), d.reason});
          sl.mon.reset();
        }
        if (sl.pids.empty()) ++ready_slots;
        sl.current = rd.self;
        sl.pids.push_back(rd.self.pid());
        sl.mon = rd.self.monitor();
        try {
          fresh.send_handle(sl.client_fd);
        } catch (const isola::error&) {
          // That incarnation died during the handshake; its successor will ask again.
        }
      };

      auto finish_slot = [&](std::size_t i) {
        slot& sl = slots[i];
        sup.delete_child("session-" + std::to_string(i));  // drops the spec and its pipe end
        ::close(sl.client_fd);
        sl.client_fd = -1;
        sl.ctl.close();
        sl.finished = true;
      };

      const auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                                std::chrono::duration<double>(deadline_s + 30));
      std::size_t finished = 0;
      std::vector<pollfd> pfds;
      std::vector<std::size_t> who;  // slot of each ctl pollfd
      while (steady::now() < deadline) {
        if (client_ended && finished == slots.size() && static_cast<int>(slots.size()) == sessions) break;
        pfds.clear();
        who.clear();
        pfds.push_back({lfd, POLLIN, 0});
        pfds.push_back({client.sentinel(), POLLIN, 0});
        for (std::size_t i = 0; i < slots.size(); ++i)
          if (!slots[i].finished) {
            pfds.push_back({slots[i].ctl.fileno(), POLLIN, 0});
            who.push_back(i);
          }
        // Once the client is gone, sessions end one by one: their monitors
        // are read below (a down is not a descriptor).
        int timeout = client_ended ? 0 : 1000;
        if (::poll(pfds.data(), pfds.size(), timeout) < 0 && errno != EINTR) {
          std::perror("poll");
          break;
        }
        // New connections: a few per round, so that handshakes are not starved.
        if (pfds[0].revents & POLLIN) {
          for (int k = 0; k < 8 && static_cast<int>(slots.size()) < sessions; ++k) {
            int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
            if (cfd < 0) break;
            ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::size_t i = slots.size();
            slots.emplace_back();
            slots[i].client_fd = cfd;
            auto table = static_cast<std::uint32_t>(i / 2);
            auto seat = static_cast<std::uint8_t>(i % 2);
            std::size_t r = table % rooms.size();
            room_ctl[r].send_handle(cfd);
            rooms[r].send(adopt{table, seat});
            auto [root_end, session_end] = isola::pipe();
            slots[i].ctl = std::move(root_end);
            sup.start_child(isola::child_spec::actor(
                                "session-" + std::to_string(i), make_session,
                                shared_end{std::make_shared<isola::connection>(std::move(session_end))},
                                session_args{static_cast<int>(i), table, seat, rooms[r]})
                                .restart_type(isola::restart::transient)
                                .shutdown(1s));
          }
        }
        for (std::size_t k = 2; k < pfds.size(); ++k)
          if (pfds[k].revents) {
            std::size_t i = who[k - 2];
            while (!slots[i].finished && slots[i].ctl.poll()) on_handshake(i);
          }
        if (ready_slots == sessions && procs_peak == 0) {
          procs_peak = count_descendants();
          fds_peak = count_fds();
        }
        if (!client_ended && (pfds[1].revents & POLLIN)) {
          client.join();
          client_ended = true;
        }
        if (client_ended) {
          // future::ready() alone does not read the root thread's inbox, where
          // down notices arrive (it returns before pumping, its deadline being
          // "now"): a short wait on one pending monitor reads the inbox and
          // completes every monitor whose notice came.
          for (auto& sl : slots)
            if (!sl.finished && sl.mon) {
              sl.mon->wait(std::chrono::milliseconds(2));
              break;
            }
          for (std::size_t i = 0; i < slots.size(); ++i) {
            slot& sl = slots[i];
            if (sl.finished || !sl.mon || !sl.mon->ready()) continue;
            isola::down d = sl.mon->get();
            sl.mon.reset();
            if (d.reason.abnormal()) {
              sl.abnormal.push_back({d.who.pid(), d.reason});  // restarted: wait for its handshake
            } else {
              finish_slot(i);
              ++finished;
            }
          }
        }
      }
      if (!client_ended) {
        std::cout << "the load client did not end in time; killing it" << std::endl;
        client.kill();
        client.join();
      }
      if (client.exitcode() != 0) std::cout << "load client exit code " << *client.exitcode() << std::endl;
      if (report_rx.poll()) report = report_rx.recv<client_report>();
    }
    report_rx.close();

    // Every session slot has ended: descriptors and processes are back to the baseline?
    auto [procs_end, fds_end] = settle_to(procs_base, fds_base, 5s);
    const bool no_leak = procs_end == procs_base && fds_end == fds_base;

    room_stats rs;
    for (auto& room : rooms) {
      auto st = room.request<room_stats>(stats_request{}).get(10s);
      rs.relayed += st.relayed;
      rs.duplicates += st.duplicates;
      rs.out_of_order += st.out_of_order;
    }

    // What the server saw of the kills.
    int server_kills = 0;
    for (std::size_t i = 0; i < slots.size(); ++i)
      for (std::size_t k = 0; k < slots[i].abnormal.size(); ++k) {
        ++server_kills;
        auto& e = slots[i].abnormal[k];
        std::cout << "server: session-" << i << " (pid " << e.pid << ") exited: " << e.reason
                  << "; restarted as pid "
                  << (k + 1 < slots[i].pids.size() ? std::to_string(slots[i].pids[k + 1]) : "?")
                  << std::endl;
      }
    const std::size_t restarts = sup.restarts();

    if (!report) {
      std::cout << "no report from the load client" << std::endl;
      result = 1;
    } else {
      const auto& c = *report;
      for (auto& k : c.kills)
        std::cout << "client: killed session-" << k.slot << " (pid " << k.old_pid << ") with move "
                  << k.at_move + 1 << " in flight; back as pid " << k.new_pid << " after "
                  << fmt_ms(k.recover_ms) << std::endl;
      for (auto& p : c.problems) std::cout << "problem: " << p << std::endl;
      const std::uint64_t total = static_cast<std::uint64_t>(sessions) * static_cast<std::uint64_t>(moves);
      std::cout << "sessions: " << sessions << " concurrent (connected and greeted in "
                << fmt_ms(c.connect_s * 1000) << ")\n"
                << "finished: " << c.finished << " of " << sessions << " sessions played all " << moves
                << " moves\n"
                << "moves: " << c.acked << " of " << total << " acked, " << c.relayed
                << " relayed to opponents, " << rs.duplicates << " duplicates dropped by rooms, "
                << c.resent << " re-sent after a restart\n"
                << "moves/s: " << static_cast<long>(static_cast<double>(c.acked) / c.play_s) << " ("
                << std::fixed << std::setprecision(2) << c.play_s << " s of play)\n"
                << "move latency (sent -> relayed to the opponent): p50 " << fmt_ms(c.relay_p50)
                << ", p99 " << fmt_ms(c.relay_p99) << "\n"
                << "ack latency (sent -> acked to the mover): p50 " << fmt_ms(c.ack_p50) << ", p99 "
                << fmt_ms(c.ack_p99) << "\n"
                << "kills: " << c.kills.size() << ", restarts: " << restarts
                << ", abnormal exits seen by the server: " << server_kills
                << ", sessions that saw a restart: " << c.restarted_sessions << "\n"
                << "killed sessions that finished their game: " << c.finished_killed << " of "
                << c.kills.size() << "\n"
                << "unaffected: " << c.unaffected << " of " << c.not_killed
                << " sessions not killed finished with no restart and no timeout\n"
                << "timeouts: " << c.timeouts << ", out-of-order: " << c.bad_order + rs.out_of_order
                << "\n"
                << "processes: " << procs_base << " idle, " << procs_peak << " with every session up, "
                << procs_end << " at the end\n"
                << "root fds: " << fds_base << " idle, " << fds_peak << " with every session up, "
                << fds_end << " at the end\n"
                << "leaks: " << (no_leak ? "none" : "YES") << std::endl;
      const bool ok = no_leak && c.problems.empty() && c.finished == sessions &&
                      c.unaffected == c.not_killed && c.acked == total && c.relayed == total &&
                      static_cast<int>(c.kills.size()) == kills && restarts == c.kills.size() &&
                      server_kills == kills && c.restarted_sessions == kills && c.timeouts == 0 &&
                      c.bad_order == 0 && rs.out_of_order == 0;
      result = ok ? 0 : 1;
    }
    sup.stop();
  }
  for (auto& room : rooms) {
    auto d = room.monitor();
    room.stop();
    d.get(10s);
  }
  room_ctl.clear();
  ::close(lfd);
  const int procs_after = settle_to(procs_before, -1, 5s).first;
  std::cout << "processes after shutdown: " << procs_after << " (before the server: " << procs_before
            << ")" << std::endl;
  if (procs_after != procs_before) result = 1;
  std::cout << "result: " << (result == 0 ? "ok" : "FAILED") << std::endl;
  return result;
}
