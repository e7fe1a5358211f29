// Actors: requests, sends, errors, handles in messages, monitors, links.
// Every actor is a real process (forkserver by default; spawn where the
// start method matters).
#include <signal.h>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <isola/actor.hpp>
#include <isola/function_registry.hpp>
#include <isola/connection.hpp>
#include <isola/error.hpp>
#include <isola/process.hpp>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::start_method;

namespace {

struct add {
  int x = 0, y = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x, y);
  }
};
struct push {
  int v = 0;
  template <class A>
  void serialize(A& ar) {
    ar(v);
  }
};
struct total {
  template <class A>
  void serialize(A&) {}
};
struct boom {
  std::string why;
  template <class A>
  void serialize(A& ar) {
    ar(why);
  }
};
struct quit_with {
  int code = 0;
  template <class A>
  void serialize(A& ar) {
    ar(code);
  }
};
struct crash {
  template <class A>
  void serialize(A&) {}
};
struct nap {
  int ms = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ms);
  }
};
struct introduce {
  isola::actor who;
  template <class A>
  void serialize(A& ar) {
    ar(who);
  }
};
struct relay {
  int x = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x);
  }
};
struct link_to {
  isola::actor who;
  bool trap = false;
  template <class A>
  void serialize(A& ar) {
    ar(who, trap);
  }
};
struct last_exit {
  template <class A>
  void serialize(A&) {}
};
struct kill_it {
  isola::actor who;
  template <class A>
  void serialize(A& ar) {
    ar(who);
  }
};
struct undecodable_count {
  template <class A>
  void serialize(A&) {}
};
struct unknown_msg {
  int z = 0;
  template <class A>
  void serialize(A& ar) {
    ar(z);
  }
};

int state_sum = 0;
isola::actor peer_b;
std::string exit_seen = "none";

// A real SIGSEGV (UBSan would turn the null store into an exit).
__attribute__((no_sanitize("undefined"))) void segfault_now() {
  volatile int* p = nullptr;
  *p = 1;
}

isola::behavior worker() {
  return {
      [](const add& a) { return a.x + a.y; },
      [](const push& p) { state_sum += p.v; },
      [](const total&) { return state_sum; },
      [](const boom& b) -> int { throw std::runtime_error(b.why); },
      [](const quit_with& q) { isola::exit(q.code); },
      [](const crash&) { segfault_now(); },
      [](const nap& n) {
        std::this_thread::sleep_for(std::chrono::milliseconds(n.ms));
        return n.ms;
      },
      [](const introduce& i) { peer_b = i.who; },
      [](const relay& r) {
        return peer_b.request<int>(add{r.x, 1000}).get(5s);
      },
      [](const link_to& l) {
        isola::this_actor::trap_exit(l.trap);
        isola::this_actor::link(l.who);
      },
      [](const isola::exit_msg& m) { exit_seen = m.reason.to_string(); },
      [](const kill_it& k) { k.who.kill(); },
      [](const last_exit&) { return exit_seen; },
      [](const undecodable_count&) { return isola::this_actor::undecodable_messages(); },
  };
}

// A request whose payload is whatever bytes the test gives, under any tag:
// what a corrupt or forged message looks like to the receiver.
template <class R>
isola::future<R> raw_request(const isola::actor& a, std::uint64_t tag,
                             std::span<const std::byte> payload) {
  auto st = std::make_shared<isola::detail::future_state<R>>();
  std::weak_ptr<isola::detail::future_state<R>> w = st;
  isola::detail::request(
      a.id(), tag, payload, std::nullopt, st,
      [w](std::uint64_t, std::span<const std::byte> reply) {
        auto s = w.lock();
        if (!s) return;
        try {
          s->succeed(isola::decode<R>(reply));
        } catch (...) {
          s->fail(std::current_exception());
        }
      });
  return isola::future<R>(std::move(st));
}

isola::bytes raw_bytes(std::initializer_list<int> v) {
  isola::bytes b;
  for (int x : v) b.push_back(static_cast<std::byte>(x));
  return b;
}

isola::behavior with_offset(int offset) {
  return {[offset](const add& a) { return a.x + a.y + offset; }};
}
// Actor processes spawn it through the root, which runs only what it
// registered at start-up.
ISOLA_REGISTER_FUNCTION(with_offset);

// A connection end is move-only: the actor keeps the one it was given.
isola::connection g_conn;
isola::behavior with_connection(isola::connection c) {
  g_conn = std::move(c);
  return {[](const add& a) {
    g_conn.send(a.x + a.y);
    return 0;
  }};
}

// Spawns from inside an actor process (through the root).
struct spawn_req {
  int method = 0;  // as start_method
  int offset = 0;
  template <class A>
  void serialize(A& ar) {
    ar(method, offset);
  }
};
struct spawn_lambda_req {
  template <class A>
  void serialize(A&) {}
};
struct spawn_bad_req {
  template <class A>
  void serialize(A&) {}
};
isola::behavior spawner() {
  return {
      [](const spawn_req& r) {
        isola::spawn_options o;
        o.method = static_cast<start_method>(r.method);
        o.name = "grandchild";
        isola::actor c = isola::spawn(o, with_offset, r.offset);
        // The spawner talks to what it started, directly.
        if (c.request<int>(add{1, 2}).get(10s) != 3 + r.offset) throw std::runtime_error("bad sum");
        return c;
      },
      [](const spawn_lambda_req&) {
        return isola::spawn(
            [](int k) -> isola::behavior {
              return {[k](const add& x) { return (x.x + x.y) * k; }};
            },
            7);
      },
      [](const spawn_bad_req&) -> std::string {
        std::string out;
        try {
          isola::spawn_options o;
          o.method = start_method::fork;
          isola::spawn(o, worker);
          out += "fork=spawned;";
        } catch (const isola::start_method_error&) {
          out += "fork=start_method_error;";
        }
        try {
          isola::spawn(
              [](std::string s) -> isola::behavior {
                return {[n = s.size()](const total&) { return static_cast<int>(n); }};
              },
              std::string(100 * 1024, 'x'));
          out += "big=spawned;";
        } catch (const isola::value_error&) {
          out += "big=value_error;";
        }
        return out;
      },
  };
}

isola::actor start(start_method m) {
  isola::spawn_options o;
  o.method = m;
  return isola::spawn(o, worker);
}

const std::vector<start_method> actor_methods{start_method::forkserver, start_method::spawn};

}  // namespace

BOOST_AUTO_TEST_SUITE(actor)

BOOST_AUTO_TEST_CASE(a_request_is_answered_by_the_handler_in_another_process, *utf::timeout(60)) {
  for (auto m : actor_methods) {
    BOOST_TEST_CONTEXT("method " << m) {
      auto a = start(m);
      BOOST_TEST(a.pid() != ::getpid());
      BOOST_TEST(a.request<int>(add{2, 3}).get(10s) == 5);
      BOOST_TEST(a.alive());
      a.stop();
      auto d = a.monitor().get(10s);
      BOOST_TEST(d.reason.to_string() == "shutdown");
    }
  }
}

BOOST_AUTO_TEST_CASE(an_actor_spawns_actors_through_the_root, *utf::timeout(90)) {
  for (auto m : actor_methods) {
    for (auto inner : actor_methods) {
      BOOST_TEST_CONTEXT("spawner " << m << ", spawned " << inner) {
        isola::spawn_options o;
        o.method = m;
        auto sp = isola::spawn(o, spawner);
        auto c = sp.request<isola::actor>(spawn_req{static_cast<int>(inner), 100}).get(30s);
        // The new actor is the root's, in its own process: the root talks to it.
        BOOST_TEST(c.name() == "grandchild");
        BOOST_TEST(c.pid() != sp.pid());
        BOOST_TEST(c.pid() != ::getpid());
        BOOST_TEST(c.request<int>(add{2, 2}).get(10s) == 104);
        auto lam = sp.request<isola::actor>(spawn_lambda_req{}).get(30s);
        BOOST_TEST(lam.request<int>(add{1, 2}).get(10s) == 21);
        // Not linked to its spawner: it outlives it.
        sp.kill();
        BOOST_TEST(sp.monitor().get(10s).reason.what == isola::exit_reason::kind::signal);
        BOOST_TEST(c.request<int>(add{0, 0}).get(10s) == 100);
        c.stop();
        lam.stop();
        BOOST_TEST(c.monitor().get(10s).reason.to_string() == "shutdown");
      }
    }
  }
  // Bad requests are clear errors in the spawner, which lives on.
  auto sp = isola::spawn(spawner);
  BOOST_TEST(sp.request<std::string>(spawn_bad_req{}).get(30s) ==
             "fork=start_method_error;big=value_error;");
  BOOST_TEST(sp.alive());
}

BOOST_AUTO_TEST_CASE(spawn_entry_points_are_registered_and_other_functions_are_not,
                     *utf::timeout(30)) {
  // What an actor process (or another node) sends names its entry point;
  // the root calls it only if this program registered it at start-up (the
  // spawn tests go through that check; this one checks the registry).
  using Fd = decltype(&with_offset);
  auto [fe, ff] = isola::detail::spawn_addresses<Fd, int>(&with_offset);
  using isola::detail::remote_spawn_fn;
  remote_spawn_fn want = &isola::detail::remote_spawn_entry<Fd, int>;
  BOOST_TEST((fe.as<remote_spawn_fn>("test") == want));
  BOOST_TEST(ff.fn == reinterpret_cast<const void*>(&with_offset));
  BOOST_TEST((ff.as<Fd>("test") == &with_offset));  // registered as make_behavior, with its type
  // a function, but no entry point: registered with another type
  BOOST_CHECK_THROW(ff.as<remote_spawn_fn>("test"), isola::value_error);
  BOOST_CHECK_THROW(isola::detail::function_address{}.as<remote_spawn_fn>("test"),
                    isola::value_error);
}

BOOST_AUTO_TEST_CASE(spawn_passes_arguments_to_make_behavior, *utf::timeout(60)) {
  for (auto m : actor_methods) {
    isola::spawn_options o;
    o.method = m;
    auto a = isola::spawn(o, with_offset, 100);
    BOOST_TEST(a.request<int>(add{1, 2}).get(10s) == 103);
    auto lam = isola::spawn(
        o, [](int k) -> isola::behavior { return {[k](const add& x) { return (x.x + x.y) * k; }}; },
        7);
    BOOST_TEST(lam.request<int>(add{1, 2}).get(10s) == 21);
  }
}

BOOST_AUTO_TEST_CASE(a_connection_end_can_be_an_actor_argument, *utf::timeout(60)) {
  for (auto m : actor_methods) {
    BOOST_TEST_CONTEXT("method " << m) {
      auto [mine, theirs] = isola::pipe();
      isola::spawn_options o;
      o.method = m;
      auto a = isola::spawn(o, with_connection, std::move(theirs));
      BOOST_TEST(a.request<int>(add{20, 22}).get(10s) == 0);
      BOOST_TEST(mine.poll(10s));
      BOOST_TEST(mine.recv<int>() == 42);
      a.stop();
      BOOST_TEST(a.monitor().get(10s).reason.to_string() == "shutdown");
    }
  }
}

BOOST_AUTO_TEST_CASE(ready_becomes_true_without_any_other_wait, *utf::timeout(60)) {
  auto a = start(start_method::forkserver);
  auto f = a.request<int>(add{1, 2});
  BOOST_TEST(isola_test::wait_until([&] { return f.ready(); }));
  BOOST_TEST(f.get() == 3);
  auto d = a.monitor();
  a.stop();
  BOOST_TEST(isola_test::wait_until([&] { return d.ready(); }));
}

BOOST_AUTO_TEST_CASE(terminate_and_kill_end_an_actor_stuck_in_a_handler, *utf::timeout(60)) {
  for (auto m : actor_methods) {
    BOOST_TEST_CONTEXT("method " << m) {
      auto a = start(m);
      auto b = start(m);
      auto stuck_a = a.request<int>(nap{600'000});
      auto stuck_b = b.request<int>(nap{600'000});
      a.stop();  // waits for the message in hand: the nap never ends
      a.terminate();
      auto ra = a.monitor().get(10s).reason;
      BOOST_TEST((ra.what == isola::exit_reason::kind::signal && ra.code == SIGTERM));
      BOOST_CHECK_THROW(stuck_a.get(10s), isola::actor_exited);
      // From another actor: c kills b (through b's pidfd).
      auto c = start(m);
      c.send(kill_it{b});
      auto rb = b.monitor().get(10s).reason;
      BOOST_TEST((rb.what == isola::exit_reason::kind::signal && rb.code == SIGKILL));
      BOOST_CHECK_THROW(stuck_b.get(10s), isola::actor_exited);
      a.kill();  // already ended: nothing happens
      c.stop();
    }
  }
}

BOOST_AUTO_TEST_CASE(fork_is_refused_for_actors, *utf::timeout(30)) {
  isola::spawn_options o;
  o.method = start_method::fork;
  BOOST_CHECK_THROW(isola::spawn(o, worker), isola::start_method_error);
}

BOOST_AUTO_TEST_CASE(sends_arrive_in_order_and_before_a_later_request, *utf::timeout(60)) {
  auto a = start(start_method::forkserver);
  int expect = 0;
  for (int i = 1; i <= 1000; ++i) {
    BOOST_TEST(a.send(push{i}));
    expect += i;
  }
  BOOST_TEST(a.request<int>(total{}).get(10s) == expect);
}

BOOST_AUTO_TEST_CASE(a_message_without_handler_fails_the_request_and_the_actor_lives_on,
                     *utf::timeout(60)) {
  auto a = start(start_method::forkserver);
  auto f = a.request<int>(unknown_msg{1});
  BOOST_CHECK_EXCEPTION(f.get(10s), isola::type_error, [](const isola::type_error& e) {
    return std::string(e.what()).find("no handler") != std::string::npos;
  });
  BOOST_TEST(!f.successful());
  BOOST_TEST(a.send(unknown_msg{2}));  // dropped and logged, not fatal
  BOOST_TEST(a.request<int>(add{1, 1}).get(10s) == 2);
}

BOOST_AUTO_TEST_CASE(
    a_payload_that_does_not_decode_is_dropped_and_counted_and_the_actor_serves_on,
    *utf::timeout(60)) {
  for (auto m : actor_methods) {
    BOOST_TEST_CONTEXT("start method " << isola::to_string(m)) {
      auto a = start(m);
      auto mon = a.monitor();
      // Valid tags, payloads that are not their types: add is two int32s,
      // boom a string (a length prefix, then the bytes).
      const auto add_tag = isola::type_tag<add>();
      const auto boom_tag = isola::type_tag<boom>();
      const isola::bytes truncated = raw_bytes({1, 2, 3});
      const isola::bytes trailing = raw_bytes({1, 0, 0, 0, 2, 0, 0, 0, 9, 9, 9});
      const isola::bytes huge_length = raw_bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'x'});
      const isola::bytes lying_length = raw_bytes({5, 0, 0, 0, 0, 0, 0, 0, 'a', 'b'});

      namespace d = isola::detail;
      BOOST_TEST(d::post(a.id(), d::env_kind::send, 0, add_tag, truncated));
      BOOST_TEST(d::post(a.id(), d::env_kind::send, 0, boom_tag, huge_length));

      auto is_decode_error_naming = [&](const std::string& type) {
        return [&a, type](const isola::decode_error& e) {
          std::string w = e.what();
          return w.find("could not decode a message of type " + type) != std::string::npos &&
                 w.find(std::to_string(a.pid())) != std::string::npos;
        };
      };
      BOOST_CHECK_EXCEPTION(raw_request<int>(a, add_tag, truncated).get(10s), isola::decode_error,
                            is_decode_error_naming(isola::type_name<add>()));
      BOOST_CHECK_EXCEPTION(raw_request<int>(a, add_tag, trailing).get(10s), isola::decode_error,
                            is_decode_error_naming(isola::type_name<add>()));
      BOOST_CHECK_EXCEPTION(raw_request<int>(a, boom_tag, huge_length).get(10s),
                            isola::decode_error, is_decode_error_naming(isola::type_name<boom>()));
      BOOST_CHECK_EXCEPTION(raw_request<int>(a, boom_tag, lying_length).get(10s),
                            isola::decode_error, is_decode_error_naming(isola::type_name<boom>()));

      // Still serving, and every junk message was counted (the two sends are
      // ahead of this request in the mailbox).
      BOOST_TEST(a.request<int>(add{2, 3}).get(10s) == 5);
      BOOST_TEST(a.request<std::uint64_t>(undecodable_count{}).get(10s) == 6u);
      BOOST_TEST(a.alive());
      BOOST_TEST(!mon.ready());
      a.stop();
      auto dn = mon.get(10s);
      BOOST_TEST(dn.reason.what == isola::exit_reason::kind::shutdown);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_reply_of_the_wrong_type_is_a_type_error, *utf::timeout(60)) {
  auto a = start(start_method::forkserver);
  BOOST_CHECK_THROW(a.request<std::string>(add{1, 1}).get(10s), isola::type_error);
  BOOST_TEST(a.request<int>(add{1, 1}).get(10s) == 2);
}

BOOST_AUTO_TEST_CASE(a_handler_that_throws_fails_the_request_and_ends_the_actor,
                     *utf::timeout(60)) {
  auto a = start(start_method::forkserver);
  auto mon = a.monitor();
  BOOST_CHECK_EXCEPTION(a.request<int>(boom{"bad input"}).get(10s), isola::remote_error,
                        [&](const isola::remote_error& e) {
                          return e.remote_what() == "bad input" && e.pid() == a.pid() &&
                                 e.type_name() == "std::runtime_error";
                        });
  auto d = mon.get(10s);
  BOOST_TEST(d.who == a);
  BOOST_TEST(d.reason.what == isola::exit_reason::kind::exception);
  BOOST_TEST(d.reason.text == "bad input");
}

BOOST_AUTO_TEST_CASE(monitors_report_exit_codes_and_signals, *utf::timeout(60)) {
  for (auto m : actor_methods) {
    auto a = start(m);
    auto ma = a.monitor();
    a.send(quit_with{3});
    auto da = ma.get(10s);
    BOOST_TEST(da.reason.what == isola::exit_reason::kind::exit_code);
    BOOST_TEST(da.reason.code == 3);

    auto b = start(m);
    auto mb = b.monitor();
    b.send(crash{});
    auto db = mb.get(10s);
    BOOST_TEST(db.reason.what == isola::exit_reason::kind::signal);
    BOOST_TEST(db.reason.code == SIGSEGV);
    BOOST_TEST(db.reason.abnormal());

    auto c = start(m);
    auto mc = c.monitor();
    c.send(quit_with{0});
    BOOST_TEST(mc.get(10s).reason.to_string() == "normal");
    // A monitor set up after the end reports at once.
    BOOST_TEST(c.monitor().get(10s).reason.to_string() == "normal");
  }
}

BOOST_AUTO_TEST_CASE(a_request_to_an_actor_killed_mid_request_fails_within_100ms,
                     *utf::timeout(60)) {
  for (int round = 0; round < 5; ++round) {
    auto a = start(start_method::forkserver);
    auto f = a.request<int>(nap{10'000});
    BOOST_TEST(!f.wait(50ms));
    auto t0 = std::chrono::steady_clock::now();
    ::kill(a.pid(), SIGKILL);
    BOOST_CHECK_EXCEPTION(f.get(5s), isola::actor_exited, [](const isola::actor_exited& e) {
      return e.reason().find("signal 9") != std::string::npos;
    });
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    BOOST_TEST(ms.count() < 100);
    // Afterwards: sends are dropped and counted, requests fail at once.
    auto before = isola::this_actor::dropped_messages();
    BOOST_TEST(!a.send(push{1}));
    BOOST_TEST(isola::this_actor::dropped_messages() == before + 1);
    BOOST_CHECK_THROW(a.request<int>(add{1, 2}).get(1s), isola::actor_exited);
    BOOST_TEST(!a.alive());
  }
}

BOOST_AUTO_TEST_CASE(a_request_with_a_timeout_fails_when_no_reply_comes_in_time,
                     *utf::timeout(60)) {
  auto a = start(start_method::forkserver);
  auto f = a.request<int>(nap{500}, 50ms);
  BOOST_CHECK_THROW(f.get(), isola::timeout_error);
  // get(t) on a slow reply times out without losing it.
  auto g = a.request<int>(nap{300});
  BOOST_CHECK_THROW(g.get(10ms), isola::timeout_error);
  BOOST_TEST(g.get(10s) == 300);
  BOOST_TEST(a.request<int>(add{2, 2}).get(10s) == 4);
}

BOOST_AUTO_TEST_CASE(a_cancelled_request_drops_its_late_reply, *utf::timeout(60)) {
  auto a = start(start_method::forkserver);
  auto f = a.request<int>(nap{100});
  BOOST_TEST(f.cancel());
  BOOST_TEST(f.cancelled());
  BOOST_CHECK_THROW(f.get(), isola::cancelled_error);
  BOOST_TEST(a.request<int>(add{5, 5}).get(10s) == 10);
}

BOOST_AUTO_TEST_CASE(handles_travel_in_messages_and_the_receiver_talks_directly,
                     *utf::timeout(60)) {
  for (auto m : actor_methods) {
    auto b = start(m);
    auto c = start(m);
    c.send(introduce{b});
    BOOST_TEST(c.request<int>(relay{5}).get(10s) == 1005);
    // When B dies, C's request to it fails, and C reports that as an error.
    ::kill(b.pid(), SIGKILL);
    BOOST_CHECK_THROW(c.request<int>(relay{6}).get(10s), isola::remote_error);
  }
}

BOOST_AUTO_TEST_CASE(a_link_kills_the_partner_of_a_crashed_actor, *utf::timeout(60)) {
  auto victim = start(start_method::forkserver);
  auto partner = start(start_method::forkserver);
  auto mon = partner.monitor();
  partner.request<void>(link_to{victim, false}).get(10s);
  victim.send(crash{});
  auto d = mon.get(10s);
  BOOST_TEST(d.reason.what == isola::exit_reason::kind::linked);
  BOOST_TEST(d.reason.text.find("signal 11") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_normal_exit_does_not_propagate_through_a_link, *utf::timeout(60)) {
  auto quitter = start(start_method::forkserver);
  auto partner = start(start_method::forkserver);
  partner.request<void>(link_to{quitter, false}).get(10s);
  auto mq = quitter.monitor();
  quitter.send(quit_with{0});
  mq.get(10s);
  BOOST_TEST(partner.request<int>(add{1, 1}).get(10s) == 2);
}

BOOST_AUTO_TEST_CASE(trapping_exits_turns_a_linked_crash_into_a_message, *utf::timeout(60)) {
  auto victim = start(start_method::forkserver);
  auto trapper = start(start_method::forkserver);
  trapper.request<void>(link_to{victim, true}).get(10s);
  auto mv = victim.monitor();
  victim.send(quit_with{9});
  mv.get(10s);
  BOOST_TEST(isola_test::wait_until(
      [&] { return trapper.request<std::string>(last_exit{}).get(10s) == "exit code 9"; }));
  BOOST_TEST(trapper.alive());
}

BOOST_AUTO_TEST_CASE(many_threads_of_the_root_request_concurrently, *utf::timeout(120)) {
  auto a = start(start_method::forkserver);
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i)
        if (a.request<int>(add{t, i}).get(10s) == t + i) ++ok;
    });
  for (auto& t : ts) t.join();
  BOOST_TEST(ok.load() == 2000);
}

BOOST_AUTO_TEST_SUITE_END()
