// A fault-isolated service, in short: a first look at scenario 1 of
// DESIGN.md, which examples/scenarios/isolated_service is in full.
//
// A "parser" actor evaluates tiny arithmetic expressions ("12+30"). Some
// inputs are poison: "crash" makes the parser dereference a null pointer (a
// real SIGSEGV, the kind of bug a native codec has), "throw" makes it throw.
// The parser runs behind a supervisor; a client sends a mix of good and
// poisonous inputs. Every request gets a reply or a clear error, the parser
// is restarted after each crash, and the service never stops. At the end
// the client prints its counts.
//
//   fault_isolated_service [requests=200] [poison_every=7]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>

#include "example_cli.hpp"
#include <isola/isola.hpp>

using namespace std::chrono_literals;

struct parse {
  std::string text;
  template <class A>
  void serialize(A& ar) {
    ar(text);
  }
};

// A null dereference: SIGSEGV kills the parser's process, not the service.
// (Exempt from UBSan, which would otherwise turn it into a clean exit.)
__attribute__((no_sanitize("undefined"))) long dereference_null() {
  volatile long* null = nullptr;
  return *null;
}

isola::behavior parser() {
  return {[](const parse& p) -> long {
    if (p.text == "crash") return dereference_null();
    if (p.text == "throw") throw std::invalid_argument("cannot parse '" + p.text + "'");
    auto plus = p.text.find('+');
    if (plus == std::string::npos) return std::stol(p.text);
    return std::stol(p.text.substr(0, plus)) + std::stol(p.text.substr(plus + 1));
  }};
}

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  int requests = 200;
  int poison_every = 7;
  isola_example::command_line app{"a supervised parser that really segfaults; every request is answered"};
  app.add_option("requests", requests, "how many requests");
  app.add_option("poison_every", poison_every,
                 "every how many requests one is poisonous (0: none)");
  if (auto status = app.parse(argc, argv)) return *status;

  isola::supervisor service({.strategy = isola::strategy::one_for_one,
                             .intensity = requests,
                             .period = 60s,
                             .name = "service"},
                            {isola::child_spec::actor("parser", parser)});

  int ok = 0, wrong = 0, crashed = 0, threw = 0, crashes_sent = 0, throws_sent = 0;
  for (int i = 0; i < requests; ++i) {
    std::string input;
    if (poison_every > 0 && i % poison_every == poison_every - 1)
      input = (i / poison_every) % 2 == 0 ? "crash" : "throw";
    else
      input = std::to_string(i) + "+" + std::to_string(2 * i);
    if (input == "crash") ++crashes_sent;
    if (input == "throw") ++throws_sent;

    // The parser may be between incarnations: find() names the current one.
    std::optional<isola::actor> p;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!(p = service.find("parser")) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    if (!p) {
      std::cerr << "the parser did not come back\n";
      return 1;
    }
    try {
      long v = p->request<long>(parse{input}).get(10s);
      (v == 3L * i ? ok : wrong)++;
    } catch (const isola::actor_exited& e) {
      ++crashed;  // the parser died on this input: a clear error, and a restart
    } catch (const isola::remote_error& e) {
      ++threw;  // the parser threw: the error, its type and message, came back...
      // ...and, as in Erlang, a handler that throws ends its actor. Let this
      // incarnation go before asking the supervisor for the next one.
      p->monitor().get(10s);
    }
  }
  std::cout << "requests: " << requests << "\n"
            << "answered: " << ok << "\n"
            << "wrong answers: " << wrong << "\n"
            << "crashed (actor_exited): " << crashed << " of " << crashes_sent << " poisonous\n"
            << "threw (remote_error): " << threw << " of " << throws_sent << " poisonous\n"
            << "restarts: " << service.restarts() << "\n"
            << "service running: " << (service.running() ? "yes" : "no") << std::endl;
  return ok + crashed + threw == requests && wrong == 0 ? 0 : 1;
}
