// A pipeline across two nodes: a producer node streams records to a consumer
// actor that lives on another node, over TCP with an authkey.
//
// Both "hosts" are processes on the loopback here: the program re-runs itself
// as the consumer node (`distributed_pipeline --consumer-node KEY`), which
// listens on 127.0.0.1 with the key and says its port. The producer (this
// process, a root of its own) connects with the key, spawns the consumer
// actor on that node (node.spawn(make_consumer): an actor process under the
// other node's root; both nodes must run the same program, since the
// function travels as an address), sends it N records one way with `send`,
// then asks it for its totals with a `request` (a request sent after the
// records is answered after them: sends and requests to one actor arrive in
// order). It checks the totals against its own, stops the consumer actor,
// and finally shows that a connection with the wrong key is refused:
// authentication_error here, a counted failure on the consumer node.
//
//   distributed_pipeline [N]     (default 10000 records)
//
// Across real hosts: run `distributed_pipeline --consumer-node KEY` on one
// (it listens on 127.0.0.1 only here: pass {"0.0.0.0"} to node::listen to
// listen on every interface) and connect to it by name from the other.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <isola/isola.hpp>

using namespace std::chrono_literals;

namespace pipeline_msg {
// One record of the stream.
struct record {
  std::int64_t id = 0;
  std::string payload;
  template <class A>
  void serialize(A& ar) {
    ar(id, payload);
  }
};
// "How much have you seen?"
struct totals_q {
  template <class A>
  void serialize(A&) {}
};
struct totals {
  std::int64_t count = 0;
  std::int64_t id_sum = 0;
  std::uint64_t checksum = 0;  // FNV-1a over every payload, in arrival order
  std::int64_t pid = 0;        // the consumer actor's process
  template <class A>
  void serialize(A& ar) {
    ar(count, id_sum, checksum, pid);
  }
};
}  // namespace pipeline_msg

ISOLA_TYPE_NAME(pipeline_msg::record, "example.distributed_pipeline.record")
ISOLA_TYPE_NAME(pipeline_msg::totals_q, "example.distributed_pipeline.totals_q")
ISOLA_TYPE_NAME(pipeline_msg::totals, "example.distributed_pipeline.totals")

namespace {

using namespace pipeline_msg;

const std::string key = "distributed-pipeline-key";

std::uint64_t fnv1a(std::uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
constexpr std::uint64_t fnv_basis = 1469598103934665603ull;

std::string payload_of(std::int64_t id) { return "item-" + std::to_string(id * 7919 % 100003); }

// The consumer actor (on the other node): its own process, so the totals
// its handlers share are its own.
isola::behavior make_consumer() {
  auto t = std::make_shared<totals>();
  t->checksum = fnv_basis;
  t->pid = ::getpid();
  return {
      [t](const record& r) {
        ++t->count;
        t->id_sum += r.id;
        t->checksum = fnv1a(t->checksum, r.payload);
      },
      [t](const totals_q&) { return *t; },
  };
}
// Another node asks to spawn it: registered at start-up.
ISOLA_REGISTER_FUNCTION(make_consumer);

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("readlink /proc/self/exe failed");
  return std::string(buf, static_cast<std::size_t>(n));
}

// `--consumer-node KEY`: listens on the loopback, says "PORT n" on stdout,
// serves until stdin closes, then reports what its gatekeeper saw (stderr).
int consumer_node_main(const std::string& k) {
  auto port = isola::node::listen(0, k, {"127.0.0.1"});
  std::printf("PORT %u\n", static_cast<unsigned>(port));
  std::fflush(stdout);
  char c[64];
  for (;;) {
    ssize_t r = ::read(0, c, sizeof c);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
  }
  auto s = isola::node::stats();
  std::fprintf(stderr, "consumer node: %lu authenticated, %lu auth failures\n",
               static_cast<unsigned long>(s.authenticated),
               static_cast<unsigned long>(s.auth_failures));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::int64_t n = 10000;
  std::string consumer_key;
  CLI::App app{"a producer node streams records to a consumer actor on another node"};
  app.add_option("records", n, "how many records");
  app.add_option("--consumer-node", consumer_key, "run as the consumer node, with this key");
  CLI11_PARSE(app, argc, argv);
  if (!consumer_key.empty()) return consumer_node_main(consumer_key);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  // The consumer node: this program again, as another host would run it.
  isola::popen_options o;
  o.in = isola::stdio::pipe;
  o.out = isola::stdio::pipe;
  o.die_with_parent = true;
  isola::popen other({self_exe(), "--consumer-node", key}, o);
  auto line = other.out().read_line(30s);
  if (!line || line->rfind("PORT ", 0) != 0) {
    std::fprintf(stderr, "the consumer node did not start\n");
    return 1;
  }
  auto port = static_cast<std::uint16_t>(std::stoi(line->substr(5)));
  std::printf("producer: consumer node listening on 127.0.0.1:%u\n", static_cast<unsigned>(port));

  int rc = 0;
  {
    isola::node b = isola::node::connect("127.0.0.1", port, key);
    std::printf("producer: connected with the key\n");
    isola::actor consumer = b.spawn(make_consumer);
    auto down = consumer.monitor();

    std::int64_t id_sum = 0;
    std::uint64_t checksum = fnv_basis;
    auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t i = 1; i <= n; ++i) {
      record r{i, payload_of(i)};
      id_sum += r.id;
      checksum = fnv1a(checksum, r.payload);
      if (!consumer.send(std::move(r))) {
        std::fprintf(stderr, "producer: send %ld failed\n", static_cast<long>(i));
        return 1;
      }
    }
    totals t = consumer.request<totals>(totals_q{}).get(30s);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("producer: sent %ld records in %.3f s\n", static_cast<long>(n), s);
    std::printf("consumer (pid %ld, other node): %ld records, id sum %ld, checksum %016llx\n",
                static_cast<long>(t.pid), static_cast<long>(t.count), static_cast<long>(t.id_sum),
                static_cast<unsigned long long>(t.checksum));
    bool ok = t.count == n && t.id_sum == id_sum && t.checksum == checksum && t.pid != ::getpid();
    std::printf("producer: expected %ld records, id sum %ld, checksum %016llx: %s\n",
                static_cast<long>(n), static_cast<long>(id_sum),
                static_cast<unsigned long long>(checksum), ok ? "OK" : "MISMATCH");
    if (!ok) rc = 1;

    consumer.stop();
    auto d = down.get(10s);
    std::printf(
        "producer: consumer actor stopped (%s)\n",
        d.reason.what == isola::exit_reason::kind::shutdown ? "shutdown" : "unexpected reason");
  }

  // Someone without the key.
  try {
    isola::node::connect("127.0.0.1", port, "not-the-key");
    std::printf("intruder: connected?!\n");
    rc = 1;
  } catch (const isola::authentication_error&) {
    std::printf("intruder: refused (authentication_error)\n");
  }

  other.in().close();  // the consumer node ends
  int st = other.wait(20s);
  std::printf("producer: consumer node exited with %d\n", st);
  return rc == 0 && st == 0 ? 0 : 1;
}
