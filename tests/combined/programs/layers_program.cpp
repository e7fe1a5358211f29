// A whole program that puts two of isola's layers together: it sets up
// layer A, then layer B (both stay alive), does a small round trip through
// each, and ends as any program does (objects destroyed, then the runtime's
// at-exit shutdown). Run by layers_test.cpp, which checks that it ends in
// time and leaves no process behind.
//
//   layers_program A B     A, B among: fork forkserver spawn queue pipe pool
//                          executor supervisor actor manager node popen
//   layers_program --leave-behind SECONDS
//                          leaves a process behind (the harness's own test)
//   layers_program --fork-child-uses CASE
//                          a fork child of a program that runs the actor
//                          layer (CASE: supervisor, pool, spawn, actor) uses
//                          it: refused with start_method_error, never a hang
//
// It prints "pid N" for each process it started (so the test can check that
// none is left), and "round trips done" once both layers answered.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <isola/isola.hpp>

using namespace std::chrono_literals;

namespace {

struct ping {
  int x = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x);
  }
};

isola::behavior echo() {
  return {[](const ping& p) { return p.x + 1; }};
}
// node B spawns it when asked by this program's other half.
ISOLA_REGISTER_FUNCTION(echo);

int square(int x) { return x * x; }
int seven() { return 7; }

void say_pid(int pid) { std::cout << "pid " << pid << std::endl; }

[[noreturn]] void fail(const std::string& what) {
  std::cout << "CHECK FAILED: " << what << std::endl;
  std::_Exit(3);  // no at-exit: the test sees the failure, not a hang
}

void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// Node B: a spawn child that listens, tells its port, and waits for "done".
int node_b(isola::connection c) {
  auto port = isola::node::listen(0, "layers-test-key-0123456789");
  c.send(static_cast<int>(port));
  (void)c.recv<std::string>();
  return 0;
}

/// One layer: set up, then one round trip (any number of times).
struct layer {
  virtual ~layer() = default;
  virtual void round_trip() = 0;
};

struct process_layer final : layer {
  isola::start_method method;
  explicit process_layer(isola::start_method m) : method(m) {}
  void round_trip() override {
    isola::process p(isola::process_options{.method = method}, seven);
    p.start();
    say_pid(p.pid());
    check(p.join(20s), "a " + std::string(isola::to_string(method)) + " child did not end");
    check(p.exitcode() == 7, "a " + std::string(isola::to_string(method)) +
                                 " child's exit code is " +
                                 std::to_string(p.exitcode().value_or(-1000)));
  }
};

struct queue_layer final : layer {
  isola::queue<int> q;
  void round_trip() override {
    q.put(41);
    check(q.get(10s) == 41, "queue round trip");
  }
};

struct pipe_layer final : layer {
  std::pair<isola::connection, isola::connection> ends = isola::pipe();
  void round_trip() override {
    ends.first.send(std::string("hi"));
    check(ends.second.recv<std::string>() == "hi", "pipe round trip");
  }
};

struct pool_layer final : layer {
  isola::pool p{1};
  void round_trip() override { check(p.apply(square, 3) == 9, "pool round trip"); }
};

struct executor_layer final : layer {
  isola::process_pool_executor ex{1};
  void round_trip() override { check(ex.submit(square, 4).get(20s) == 16, "executor round trip"); }
};

struct supervisor_layer final : layer {
  isola::supervisor sup{{}, {isola::child_spec::actor("echo", echo)}};
  void round_trip() override {
    auto a = sup.find("echo");
    check(a.has_value(), "the supervisor's child");
    say_pid(a->pid());
    check(a->request<int>(ping{1}).get(20s) == 2, "supervisor round trip");
  }
};

struct actor_layer final : layer {
  isola::actor a = isola::spawn(echo);
  actor_layer() { say_pid(a.pid()); }
  void round_trip() override { check(a.request<int>(ping{2}).get(20s) == 3, "actor round trip"); }
};

struct manager_layer final : layer {
  isola::manager m;
  isola::managed::dict<std::string, int> d = m.dict<std::string, int>();
  void round_trip() override {
    d.set("k", 5);
    check(d.get("k") == 5, "manager round trip");
  }
};

struct node_layer final : layer {
  std::pair<isola::connection, isola::connection> ends = isola::pipe();
  isola::process b{isola::process_options{.name = "node-b", .method = isola::start_method::spawn},
                   node_b, std::move(ends.second)};
  isola::node n;
  node_layer() {
    b.start();
    say_pid(b.pid());
    auto port = ends.first.recv<int>();
    n = isola::node::connect("127.0.0.1", static_cast<std::uint16_t>(port),
                             "layers-test-key-0123456789");
  }
  ~node_layer() override {
    try {
      ends.first.send(std::string("done"));
      b.join(20s);
    } catch (...) {}
  }
  void round_trip() override {
    auto a = n.spawn(echo);
    check(a.request<int>(ping{3}).get(20s) == 4, "node round trip");
    a.stop();
  }
};

struct popen_layer final : layer {
  void round_trip() override {
    isola::popen p({"/bin/cat"}, {.in = isola::stdio::pipe, .out = isola::stdio::pipe});
    say_pid(p.pid());
    check(p.communicate("hi", 20s).out == "hi", "popen round trip");
  }
};

std::unique_ptr<layer> make(const std::string& name) {
  using isola::start_method;
  if (name == "fork") return std::make_unique<process_layer>(start_method::fork);
  if (name == "forkserver") return std::make_unique<process_layer>(start_method::forkserver);
  if (name == "spawn") return std::make_unique<process_layer>(start_method::spawn);
  if (name == "queue") return std::make_unique<queue_layer>();
  if (name == "pipe") return std::make_unique<pipe_layer>();
  if (name == "pool") return std::make_unique<pool_layer>();
  if (name == "executor") return std::make_unique<executor_layer>();
  if (name == "supervisor") return std::make_unique<supervisor_layer>();
  if (name == "actor") return std::make_unique<actor_layer>();
  if (name == "manager") return std::make_unique<manager_layer>();
  if (name == "node") return std::make_unique<node_layer>();
  if (name == "popen") return std::make_unique<popen_layer>();
  fail("unknown layer " + name);
}

// What a fork child does with the parent's actor layer: 7 when refused with
// start_method_error, 8 if it worked (the copy answered), 9 otherwise.
template <class F>
int refused(F use) {
  try {
    use();
    return 8;
  } catch (const isola::start_method_error& e) {
    std::cout << "refused: " << e.what() << std::endl;
    return 7;
  } catch (const std::exception& e) {
    std::cout << "other error: " << e.what() << std::endl;
    return 9;
  }
}

// An actor whose process forks a child that tries to act as the actor.
struct fork_and_spawn {
  template <class A>
  void serialize(A&) {}
};
isola::behavior forking_actor() {
  return {[](const fork_and_spawn&) {
    isola::process p(isola::process_options{.method = isola::start_method::fork},
                     [] { return refused([] { (void)isola::spawn(echo); }); });
    p.start();
    if (!p.join(20s)) return -1;
    return p.exitcode().value_or(-1);
  }};
}

int fork_child_uses(const std::string& what) {
  isola::supervisor sup{{}, {isola::child_spec::actor("echo", echo)}};
  isola::pool pl{1};
  auto a = isola::spawn(echo);
  check(a.request<int>(ping{1}).get(20s) == 2, "the actor answers its parent");
  if (what == "actor-process") {
    isola::spawn_options so;
    so.daemon = false;  // daemonic processes may not have children
    auto f = isola::spawn(so, forking_actor);
    say_pid(f.pid());
    int code = f.request<int>(fork_and_spawn{}).get(30s);
    check(code == 7, "a fork child of an actor process used the actor's context (code " +
                         std::to_string(code) + ")");
    return 0;
  }
  isola::process p(isola::process_options{.method = isola::start_method::fork}, [&]() -> int {
    if (what == "supervisor") return refused([&] { (void)sup.find("echo"); });
    if (what == "pool") return refused([&] { (void)pl.apply(square, 2); });
    if (what == "spawn") return refused([] { (void)isola::spawn(echo); });
    if (what == "actor") return refused([&] { (void)a.request<int>(ping{1}).get(5s); });
    return 2;
  });
  p.start();
  say_pid(p.pid());
  check(p.join(20s), "the fork child did not end");
  check(p.exitcode() == 7, "the fork child's use of the parent's " + what +
                               " was not refused (exit code " +
                               std::to_string(p.exitcode().value_or(-1000)) + ")");
  // The parent's layer goes on.
  check(sup.find("echo")->request<int>(ping{2}).get(20s) == 3, "the supervisor after the fork");
  check(pl.apply(square, 5) == 25, "the pool after the fork");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  if (argc < 3) return 2;
  if (std::string(argv[1]) == "--leave-behind") {
    // For the harness's own test: a grandchild that outlives the program
    // (no isola parent, no PDEATHSIG) for argv[2] seconds.
    if (::fork() == 0) {
      if (::fork() == 0) {
        // Without isola's descriptors (the zygote's socket): the program
        // must not wait for it, only the harness must see it.
        for (int fd = 3; fd < 1024; ++fd) ::close(fd);
        ::sleep(static_cast<unsigned>(std::stoi(argv[2])));
        ::_exit(0);
      }
      ::_exit(0);
    }
    std::cout << "round trips done" << std::endl;
    return 0;
  }
  if (std::string(argv[1]) == "--fork-child-uses") {
    try {
      fork_child_uses(argv[2]);
    } catch (const std::exception& e) {
      fail(std::string("exception: ") + e.what());
    }
    std::cout << "round trips done" << std::endl;
    return 0;
  }
  try {
    auto a = make(argv[1]);
    auto b = make(argv[2]);
    a->round_trip();
    b->round_trip();
    a->round_trip();  // A again, now that B is there too
  } catch (const std::exception& e) {
    fail(std::string("exception: ") + e.what());
  }
  std::cout << "round trips done" << std::endl;
  return 0;
}
