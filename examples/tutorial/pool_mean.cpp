// Mirrors the data-analysis program of seed 001 ("数据分析任务并行化"): the
// mean of 100000 random numbers, split into five subsets whose means five
// processes compute:
//
//   def analyze(data):
//       return np.mean(data)
//   with Pool(processes=5) as pool:
//       data = np.random.rand(100000)
//       sub_datas = [data[i::5] for i in range(5)]
//       results = pool.map(analyze, sub_datas)
//       print(np.mean(results))
//
//   pool_mean [n=100000] [seed]     n numbers in [0, 1); a fixed seed by default
//
// The seed prints the mean of the five means. This twin prints it too (6
// decimals), then how many means map returned and the mean computed in the
// main process without the pool, which is the same number: the five subsets
// are the same size, so the mean of their means is the mean of all.
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <random>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace {

double analyze(const std::vector<double>& data) {
  return std::accumulate(data.begin(), data.end(), 0.0) / static_cast<double>(data.size());
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::size_t n = 100000;
  unsigned seed = 2024;
  isola_example::command_line app{"the mean of random numbers, computed by a pool of five"};
  app.add_option("n", n, "how many numbers");
  app.add_option("seed", seed, "random seed");
  if (auto status = app.parse(argc, argv)) return *status;

  std::cout << std::fixed << std::setprecision(6);
  {
    isola::pool pool(5);  // with Pool(processes=5) as pool:
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> rand(0.0, 1.0);
    std::vector<double> data(n);
    for (auto& x : data) x = rand(gen);
    // 将数据集分成多个子集: data[i::5]
    std::vector<std::vector<double>> sub_datas(5);
    for (std::size_t k = 0; k < data.size(); ++k) sub_datas[k % 5].push_back(data[k]);
    std::vector<double> results = pool.map(analyze, sub_datas);  // 使用进程池并行分析数据子集
    std::cout << analyze(results) << std::endl;                  // 输出结果

    std::cout << "子集均值个数: " << results.size() << std::endl;
    std::cout << "主进程直接计算: " << analyze(data) << std::endl;
  }
}
