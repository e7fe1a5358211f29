// Starting and joining processes from several threads at once: the registry,
// the zygote connection and the name counter are shared. Run under TSan by
// the ISOLA_SANITIZE=thread build.
#include <boost/test/unit_test.hpp>

#include <isola/process.hpp>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using isola::start_method;

namespace {
int echo(int v) { return v; }
}  // namespace

BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(processes_can_be_started_and_joined_from_several_threads_at_once,
                     *utf::timeout(120)) {
  constexpr int n_threads = 4, per_thread = 6;
  std::atomic<int> wrong{0};
  std::vector<std::string> names[n_threads];
  std::vector<std::thread> threads;
  for (int t = 0; t < n_threads; ++t) {
    threads.emplace_back([t, &wrong, &names] {
      auto methods = isola::all_start_methods();
      for (int i = 0; i < per_thread; ++i) {
        auto m = methods[static_cast<std::size_t>(i) % methods.size()];
        int code = t * 10 + i;
        isola::process p(isola::process_options{.method = m}, echo, code);
        names[t].push_back(p.name());
        p.start();
        p.join();
        if (p.exitcode() != code) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  BOOST_TEST(wrong.load() == 0);
  std::set<std::string> unique;
  for (auto& v : names) unique.insert(v.begin(), v.end());
  BOOST_TEST(unique.size() == static_cast<std::size_t>(n_threads * per_thread));
  BOOST_TEST(isola::active_children().empty());
}

BOOST_AUTO_TEST_SUITE_END()
