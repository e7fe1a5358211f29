// Scenario 2 of DESIGN.md: game-server session handling.
//
//   game_server [sessions=40] [moves=50] [kills=3] [rooms=4]
//   game_server 500 100 5 8          # the long run (500 concurrent sessions)
//
// The parts: game_server.cpp (this file) is the root: the listener, the
// session slots and the summary; actors.cpp holds the room and session
// actors, load_client.cpp the load client, protocol.hpp what they say to
// each other, leak_check.cpp what the leak check counts.
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <isola/isola.hpp>

#include "leak_check.hpp"
#include "protocol.hpp"

using namespace std::chrono_literals;

namespace game_server {
namespace {

// ---------------------------------------------------------------- configuration
struct options {  // as given on the command line
  int sessions = 40, moves = 50, kills = 3, rooms = 4;
};

struct game_config {
  int sessions = 0, moves = 0, kills = 0, nrooms = 0;
  double deadline_s = 0;
};

game_config to_config(const options& o) {
  game_config g;
  g.sessions = (std::max(2, o.sessions) + 1) / 2 * 2;  // even: 2 per table
  g.moves = std::max(1, o.moves);
  // A session is killed with its move half-way through the game in flight: that needs 2 moves.
  g.kills = g.moves < 2 ? 0 : std::clamp(o.kills, 0, g.sessions);
  g.nrooms = std::max(1, o.rooms);
  g.deadline_s = 60 + g.sessions * g.moves / 2000.0;
  return g;
}

void add_options(CLI::App& app, options& o) {
  app.add_option("sessions", o.sessions, "concurrent sessions (rounded up to an even number)");
  app.add_option("moves", o.moves, "moves per session");
  app.add_option("kills", o.kills, "sessions SIGKILLed mid-game");
  app.add_option("rooms", o.rooms, "room actors");
}

// The root holds several descriptors per session: raise the soft limit to
// the hard one, before the runtime, so that the forkserver zygote (and every
// actor) has the same limit as the root.
void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// ---------------------------------------------------------------- listener and rooms
/// The listener on 127.0.0.1, on a free port: {fd, port}; fd -1 if it failed.
std::pair<int, int> open_listener() {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 4096) != 0) {
    std::perror("listen");
    return {-1, 0};
  }
  socklen_t alen = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &alen);
  return {lfd, ntohs(addr.sin_port)};
}

// Rooms, each with a control pipe the root passes client descriptors over.
struct room_set {
  std::vector<isola::actor> actors;
  std::vector<isola::connection> ctl;
};

room_set start_rooms(int n) {
  room_set rooms;
  for (int r = 0; r < n; ++r) {
    auto [root_end, room_end] = isola::pipe();
    rooms.actors.push_back(
        isola::spawn(isola::spawn_options{.name = "room-" + std::to_string(r)}, make_room,
                     shared_end{std::make_shared<isola::connection>(std::move(room_end))}));
    rooms.ctl.push_back(std::move(root_end));
  }
  return rooms;
}

room_stats sum_room_stats(room_set& rooms) {
  room_stats rs;
  for (auto& room : rooms.actors) {
    auto st = room.request<room_stats>(stats_request{}).get(10s);
    rs.relayed += st.relayed;
    rs.duplicates += st.duplicates;
    rs.out_of_order += st.out_of_order;
  }
  return rs;
}

void stop_rooms(room_set& rooms) {
  for (auto& room : rooms.actors) {
    auto d = room.monitor();
    room.stop();
    d.get(10s);
  }
  rooms.ctl.clear();
}

// ---------------------------------------------------------------- session slots
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

// The root's side of the sessions: accepts each connection into a slot,
// starts its session under the supervisor, answers each incarnation's
// handshake with the client's descriptor, and closes the slot when the
// session ends normally (the client hung up).
class session_server {
 public:
  session_server(const game_config& cfg, int lfd, room_set& rooms, isola::supervisor& sup)
      : cfg_(cfg), lfd_(lfd), rooms_(rooms), sup_(sup) {
    slots_.reserve(static_cast<std::size_t>(cfg.sessions));
  }

  // Until the load client has ended and every slot is closed (or the deadline).
  void serve(isola::process& client) {
    const auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                              std::chrono::duration<double>(cfg_.deadline_s + 30));
    std::vector<pollfd> pfds;
    std::vector<std::size_t> who;  // slot of each ctl pollfd
    while (steady::now() < deadline) {
      if (client_ended_ && finished_ == slots_.size() &&
          static_cast<int>(slots_.size()) == cfg_.sessions)
        break;
      pfds.clear();
      who.clear();
      pfds.push_back({lfd_, POLLIN, 0});
      pfds.push_back({client.sentinel(), POLLIN, 0});
      for (std::size_t i = 0; i < slots_.size(); ++i)
        if (!slots_[i].finished) {
          pfds.push_back({slots_[i].ctl.fileno(), POLLIN, 0});
          who.push_back(i);
        }
      // Once the client is gone, sessions end one by one: their monitors
      // are read below (a down is not a descriptor).
      int timeout = client_ended_ ? 0 : 1000;
      if (::poll(pfds.data(), pfds.size(), timeout) < 0 && errno != EINTR) {
        std::perror("poll");
        break;
      }
      if (pfds[0].revents & POLLIN) accept_new();
      for (std::size_t k = 2; k < pfds.size(); ++k)
        if (pfds[k].revents) {
          std::size_t i = who[k - 2];
          while (!slots_[i].finished && slots_[i].ctl.poll()) on_handshake(i);
        }
      if (ready_slots_ == cfg_.sessions && procs_peak_ == 0) {
        procs_peak_ = count_descendants();
        fds_peak_ = count_fds();
      }
      if (!client_ended_ && (pfds[1].revents & POLLIN)) {
        client.join();
        client_ended_ = true;
      }
      if (client_ended_) collect_downs();
    }
  }

  // Prints what the server saw of the kills; returns how many.
  int print_kills() const {
    int server_kills = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      for (std::size_t k = 0; k < slots_[i].abnormal.size(); ++k) {
        ++server_kills;
        auto& e = slots_[i].abnormal[k];
        std::cout << "server: session-" << i << " (pid " << e.pid << ") exited: " << e.reason
                  << "; restarted as pid "
                  << (k + 1 < slots_[i].pids.size() ? std::to_string(slots_[i].pids[k + 1]) : "?")
                  << std::endl;
      }
    return server_kills;
  }

  bool client_ended() const { return client_ended_; }
  int procs_peak() const { return procs_peak_; }
  int fds_peak() const { return fds_peak_; }

 private:
  // New connections: a few per round, so that handshakes are not starved.
  void accept_new() {
    int one = 1;
    for (int k = 0; k < 8 && static_cast<int>(slots_.size()) < cfg_.sessions; ++k) {
      int cfd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd < 0) break;
      ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::size_t i = slots_.size();
      slots_.emplace_back();
      slots_[i].client_fd = cfd;
      auto table = static_cast<std::uint32_t>(i / 2);
      auto seat = static_cast<std::uint8_t>(i % 2);
      std::size_t r = table % rooms_.actors.size();
      rooms_.ctl[r].send_handle(cfd);
      rooms_.actors[r].send(adopt{table, seat});
      auto [root_end, session_end] = isola::pipe();
      slots_[i].ctl = std::move(root_end);
      sup_.start_child(isola::child_spec::actor(
                           "session-" + std::to_string(i), make_session,
                           shared_end{std::make_shared<isola::connection>(std::move(session_end))},
                           session_args{static_cast<int>(i), table, seat, rooms_.actors[r]})
                           .restart_type(isola::restart::transient)
                           .shutdown(1s));
    }
  }

  void on_handshake(std::size_t i) {
    slot& sl = slots_[i];
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
    if (sl.pids.empty()) ++ready_slots_;
    sl.current = rd.self;
    sl.pids.push_back(rd.self.pid());
    sl.mon = rd.self.monitor();
    try {
      fresh.send_handle(sl.client_fd);
    } catch (const isola::error&) {
      // That incarnation died during the handshake; its successor will ask again.
    }
  }

  // Reads the down notices of ended sessions: an abnormal one was restarted
  // (its handshake follows), a normal one closes its slot.
  void collect_downs() {
    // future::ready() alone does not read the root thread's inbox, where
    // down notices arrive (it returns before pumping, its deadline being
    // "now"): a short wait on one pending monitor reads the inbox and
    // completes every monitor whose notice came.
    for (auto& sl : slots_)
      if (!sl.finished && sl.mon) {
        sl.mon->wait(std::chrono::milliseconds(2));
        break;
      }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      slot& sl = slots_[i];
      if (sl.finished || !sl.mon || !sl.mon->ready()) continue;
      isola::down d = sl.mon->get();
      sl.mon.reset();
      if (d.reason.abnormal()) {
        sl.abnormal.push_back({d.who.pid(), d.reason});  // restarted: wait for its handshake
      } else {
        finish_slot(i);
        ++finished_;
      }
    }
  }

  void finish_slot(std::size_t i) {
    slot& sl = slots_[i];
    sup_.delete_child("session-" + std::to_string(i));  // drops the spec and its pipe end
    ::close(sl.client_fd);
    sl.client_fd = -1;
    sl.ctl.close();
    sl.finished = true;
  }

  const game_config& cfg_;
  int lfd_;
  room_set& rooms_;
  isola::supervisor& sup_;
  std::vector<slot> slots_;
  int ready_slots_ = 0;
  std::size_t finished_ = 0;
  bool client_ended_ = false;
  int procs_peak_ = 0, fds_peak_ = 0;
};

// Starts the load client and serves its sessions until it has ended;
// returns its report (none if it sent none).
std::optional<client_report> play(session_server& server, const game_config& cfg, int port) {
  auto [report_rx, report_tx] = isola::pipe(false);
  std::optional<client_report> report;
  {
    isola::process client(
        isola::process_options{.name = "load-client", .method = isola::start_method::forkserver},
        run_client, client_config{port, cfg.sessions, cfg.moves, cfg.kills, cfg.deadline_s},
        std::move(report_tx));
    client.start();
    std::cout << "game server on 127.0.0.1:" << port << ": " << cfg.sessions << " sessions ("
              << cfg.sessions / 2 << " tables in " << cfg.nrooms << " rooms), " << cfg.moves
              << " moves each, " << cfg.kills << " sessions to kill" << std::endl;
    server.serve(client);
    if (!server.client_ended()) {
      std::cout << "the load client did not end in time; killing it" << std::endl;
      client.kill();
      client.join();
    }
    if (client.exitcode() != 0)
      std::cout << "load client exit code " << *client.exitcode() << std::endl;
    if (report_rx.poll()) report = report_rx.recv<client_report>();
  }
  report_rx.close();
  return report;
}

// ---------------------------------------------------------------- summary
std::string fmt_ms(double ms) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(ms < 10 ? 2 : 1) << ms << " ms";
  return o.str();
}

// What the root saw, next to the client's report.
struct server_view {
  room_stats rooms;
  std::size_t restarts = 0;
  int server_kills = 0;
  int procs_base = 0, procs_peak = 0, procs_end = 0;
  int fds_base = 0, fds_peak = 0, fds_end = 0;
  bool no_leak = false;
};

// Prints the summary; true if everything went as it must.
bool print_summary(const client_report& c, const game_config& cfg, const server_view& v) {
  for (auto& k : c.kills)
    std::cout << "client: killed session-" << k.slot << " (pid " << k.old_pid << ") with move "
              << k.at_move + 1 << " in flight; back as pid " << k.new_pid << " after "
              << fmt_ms(k.recover_ms) << std::endl;
  for (auto& p : c.problems) std::cout << "problem: " << p << std::endl;
  const std::uint64_t total =
      static_cast<std::uint64_t>(cfg.sessions) * static_cast<std::uint64_t>(cfg.moves);
  std::cout << "sessions: " << cfg.sessions << " concurrent (connected and greeted in "
            << fmt_ms(c.connect_s * 1000) << ")\n"
            << "finished: " << c.finished << " of " << cfg.sessions << " sessions played all "
            << cfg.moves << " moves\n"
            << "moves: " << c.acked << " of " << total << " acked, " << c.relayed
            << " relayed to opponents, " << v.rooms.duplicates << " duplicates dropped by rooms, "
            << c.resent << " re-sent after a restart\n"
            << "moves/s: " << static_cast<long>(static_cast<double>(c.acked) / c.play_s) << " ("
            << std::fixed << std::setprecision(2) << c.play_s << " s of play)\n"
            << "move latency (sent -> relayed to the opponent): p50 " << fmt_ms(c.relay_p50)
            << ", p99 " << fmt_ms(c.relay_p99) << "\n"
            << "ack latency (sent -> acked to the mover): p50 " << fmt_ms(c.ack_p50) << ", p99 "
            << fmt_ms(c.ack_p99) << "\n"
            << "kills: " << c.kills.size() << ", restarts: " << v.restarts
            << ", abnormal exits seen by the server: " << v.server_kills
            << ", sessions that saw a restart: " << c.restarted_sessions << "\n"
            << "killed sessions that finished their game: " << c.finished_killed << " of "
            << c.kills.size() << "\n"
            << "unaffected: " << c.unaffected << " of " << c.not_killed
            << " sessions not killed finished with no restart and no timeout\n"
            << "timeouts: " << c.timeouts
            << ", out-of-order: " << c.bad_order + v.rooms.out_of_order << "\n"
            << "processes: " << v.procs_base << " idle, " << v.procs_peak
            << " with every session up, " << v.procs_end << " at the end\n"
            << "root fds: " << v.fds_base << " idle, " << v.fds_peak << " with every session up, "
            << v.fds_end << " at the end\n"
            << "leaks: " << (v.no_leak ? "none" : "YES") << std::endl;
  return v.no_leak && c.problems.empty() && c.finished == cfg.sessions &&
         c.unaffected == c.not_killed && c.acked == total && c.relayed == total &&
         static_cast<int>(c.kills.size()) == cfg.kills && v.restarts == c.kills.size() &&
         v.server_kills == cfg.kills && c.restarted_sessions == cfg.kills && c.timeouts == 0 &&
         c.bad_order == 0 && v.rooms.out_of_order == 0;
}

// ---------------------------------------------------------------- the root
// The sessions' supervisor, the game, the leak check and the summary: 0 if
// everything went as it must.
int run_server(const game_config& cfg, int lfd, int port, room_set& rooms) {
  isola::supervisor sup({.strategy = isola::strategy::one_for_one,
                         .intensity = cfg.kills + 10,
                         .period = 60s,
                         .name = "sessions"});
  // Every room is up (this also gives the root thread its reply inbox,
  // which it keeps: a fixed cost, not one per session).
  for (auto& room : rooms.actors) room.request<room_stats>(stats_request{}).get(10s);
  server_view v;
  // The baseline: the server is up and idle (rooms, supervisor, listener).
  v.procs_base = count_descendants();
  v.fds_base = count_fds();

  session_server server(cfg, lfd, rooms, sup);
  std::optional<client_report> report = play(server, cfg, port);

  // Every session slot has ended: descriptors and processes are back to the baseline?
  std::tie(v.procs_end, v.fds_end) = settle_to(v.procs_base, v.fds_base, 5s);
  v.no_leak = v.procs_end == v.procs_base && v.fds_end == v.fds_base;
  v.procs_peak = server.procs_peak();
  v.fds_peak = server.fds_peak();
  v.rooms = sum_room_stats(rooms);
  v.server_kills = server.print_kills();
  v.restarts = sup.restarts();

  int result = 1;
  if (!report)
    std::cout << "no report from the load client" << std::endl;
  else
    result = print_summary(*report, cfg, v) ? 0 : 1;
  sup.stop();
  return result;
}

int run(const game_config& cfg) {
  const int procs_before = count_descendants();
  auto [lfd, port] = open_listener();
  if (lfd < 0) return 1;
  room_set rooms = start_rooms(cfg.nrooms);
  int result = run_server(cfg, lfd, port, rooms);
  stop_rooms(rooms);
  ::close(lfd);
  const int procs_after = settle_to(procs_before, -1, 5s).first;
  std::cout << "processes after shutdown: " << procs_after
            << " (before the server: " << procs_before << ")" << std::endl;
  if (procs_after != procs_before) result = 1;
  std::cout << "result: " << (result == 0 ? "ok" : "FAILED") << std::endl;
  return result;
}

}  // namespace
}  // namespace game_server

int main(int argc, char** argv) {
  game_server::raise_fd_limit();  // before the runtime: see there
  isola::runtime rt{argc, argv};
  game_server::options o;
  CLI::App app{
      "a TCP game server, one supervised session process per connection; sessions "
      "SIGKILLed mid-game come back on the same connection"};
  game_server::add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  return game_server::run(game_server::to_config(o));
}
