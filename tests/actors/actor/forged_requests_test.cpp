// Requests from a hostile or broken actor process, in real processes: a spawn
// that names an unregistered make_behavior, libc's abort, an unknown start
// method, a huge mailbox, a bad name; a pool task that names an unregistered
// function. Each is a value_error where it lands; the root, the worker and
// the asker live on, and later spawns and process starts work.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include <isola/actor.hpp>
#include <isola/function_registry.hpp>
#include <isola/pool.hpp>
#include <isola/process.hpp>

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::start_method;

namespace {

struct ping {
  template <class A>
  void serialize(A&) {}
};
struct forge {
  int what = 0;
  template <class A>
  void serialize(A& ar) {
    ar(what);
  }
};
struct forge_task {
  isola::actor worker;
  isola::actor collector;
  bool registered = false;
  template <class A>
  void serialize(A& ar) {
    ar(worker, collector, registered);
  }
};
struct results_query {
  template <class A>
  void serialize(A&) {}
};

isola::behavior pinger() {
  return {[](const ping&) { return 42; }};
}
ISOLA_REGISTER_FUNCTION(pinger);

// Never registered anywhere: an actor process may name it, nobody runs it.
isola::behavior unregistered_behavior() {
  return {[](const ping&) { return -1; }};
}

int triple(int x) { return 3 * x; }
ISOLA_REGISTER_FUNCTION(triple);
int never_registered(int x) { return 1000 * x; }

isola::behavior forger() {
  return {
      [](const forge& f) -> std::string {
        try {
          isola::spawn_options o;
          o.method = start_method::forkserver;
          switch (f.what) {
            case 0: (void)isola::spawn(o, &unregistered_behavior); break;
            case 1:
              (void)isola::spawn(o, reinterpret_cast<isola::behavior (*)()>(reinterpret_cast<void (*)()>(&::abort)));
              break;
            case 2:
              o.method = static_cast<start_method>(7);
              (void)isola::spawn(o, &pinger);
              break;
            case 3:
              o.mailbox_bytes = std::size_t{1} << 40;
              (void)isola::spawn(o, &pinger);
              break;
            case 4:
              o.name = std::string(10000, 'n');
              (void)isola::spawn(o, &pinger);
              break;
            case 5:
              o.name = "two\nlines";
              (void)isola::spawn(o, &pinger);
              break;
            default: {
              auto a = isola::spawn(o, &pinger);  // registered: works
              int r = a.request<int>(ping{}).get(10s);
              a.stop();
              return "spawned:" + std::to_string(r);
            }
          }
          return "spawned";
        } catch (const isola::value_error&) {
          return "value_error";
        } catch (const std::exception& e) {
          return std::string("other:") + e.what();
        }
      },
      [](const forge_task& f) {
        // A task batch as the pool's dispatcher sends it, but from here.
        namespace d = isola::detail;
        using Fp = int (*)(int);
        d::task_batch b;
        b.reply_to = f.collector;
        d::task_msg t;
        t.id = f.registered ? 2 : 1;
        t.trampoline = d::function_address::of_static<&d::call_trampoline<Fp, int>>();
        t.fn = d::function_address::of(f.registered ? &triple : &never_registered);
        t.args = isola::encode(std::tuple<int>(5));
        b.tasks.push_back(t);
        f.worker.send(b);
        return 0;
      },
  };
}

// Keeps the task results a worker sends it.
std::vector<std::string> g_results;
isola::behavior collector() {
  return {
      [](const isola::detail::task_result& r) {
        g_results.push_back(r.ok ? "ok:" + std::to_string(isola::decode<int>(r.value))
                                 : r.type_name);
      },
      [](const results_query&) { return g_results; },
  };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(forged_requests)

BOOST_AUTO_TEST_CASE(a_spawn_request_from_an_actor_is_checked_field_by_field,
                     *utf::timeout(120)) {
  for (auto m : {start_method::forkserver, start_method::spawn}) {
    BOOST_TEST_CONTEXT("forger started with " << m) {
      isola::spawn_options o;
      o.method = m;
      auto f = isola::spawn(o, &forger);
      const char* what[] = {"unregistered make_behavior", "abort as make_behavior",
                            "start method 7", "1 TiB mailbox", "10 KB name", "control characters"};
      for (int i = 0; i < 6; ++i)
        BOOST_TEST_CONTEXT(what[i]) {
          BOOST_TEST(f.request<std::string>(forge{i}).get(30s) == "value_error");
        }
      // The forger, the root and process starts are unharmed.
      BOOST_TEST(f.alive());
      BOOST_TEST(f.request<std::string>(forge{99}).get(30s) == "spawned:42");
      for (auto pm : {start_method::fork, start_method::forkserver, start_method::spawn}) {
        isola::process_options po;
        po.method = pm;
        isola::process p(po, +[] { return 3; });
        p.start();
        BOOST_TEST(p.join(30s));
        BOOST_TEST(p.exitcode().value_or(-1) == 3);
      }
      f.stop();
    }
  }
}

BOOST_AUTO_TEST_CASE(a_pool_task_naming_an_unregistered_function_fails_and_the_worker_lives_on,
                     *utf::timeout(120)) {
  auto worker = isola::spawn(&isola::detail::pool_worker, isola::detail::worker_init{});
  auto coll = isola::spawn(&collector);
  auto f = isola::spawn(&forger);
  f.request<int>(forge_task{worker, coll, false}).get(30s);
  f.request<int>(forge_task{worker, coll, true}).get(30s);
  std::vector<std::string> got;
  auto until = std::chrono::steady_clock::now() + 30s;
  while (got.size() < 2 && std::chrono::steady_clock::now() < until)
    got = coll.request<std::vector<std::string>>(results_query{}).get(10s);
  BOOST_REQUIRE(got.size() == 2u);
  BOOST_TEST(got[0] == "isola::value_error");  // never_registered did not run
  BOOST_TEST(got[1] == "ok:15");               // the worker runs the registered one
  BOOST_TEST(worker.alive());
  for (auto* a : {&worker, &coll, &f}) a->stop();
}

BOOST_AUTO_TEST_SUITE_END()
