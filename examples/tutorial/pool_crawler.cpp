// Mirrors the crawler of seed 001 ("网络爬虫并行处理"), on local files instead
// of web pages: a pool of five processes fetches the pages, map returns their
// texts in the order of the urls:
//
//   def crawl(url):
//       response = requests.get(url)
//       return response.text
//   with Pool(processes=5) as pool:
//       urls = ['https://www.example.com/1', 'https://www.example.com/2', 'https://www.example.com/3']
//       results = pool.map(crawl, urls)
//       for result in results:
//           print(result)
//
//   pool_crawler [dir]     crawl file://<dir>/<name> for every regular file of
//                          dir (in name order); without dir, three pages 1, 2
//                          and 3 made in a temporary directory (removed at the
//                          end), as the seed's three urls
//
// The pages can be long, so for each result this twin prints its url, its
// size and its first line ("file:///tmp/.../1 (25 字节): <html>第1页</html>"),
// then how many pages it fetched and how many of the texts the workers sent
// back are byte for byte what the main process reads from the same files.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "example_cli.hpp"
#include <isola/isola.hpp>

namespace fs = std::filesystem;

namespace {

const std::string scheme = "file://";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// 定义爬取函数: the "response text" of a file:// url.
std::string crawl(const std::string& url) {
  if (url.rfind(scheme, 0) != 0) throw std::invalid_argument("not a file:// url: " + url);
  return read_file(url.substr(scheme.size()));
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::string dir_arg;
  isola_example::command_line app{"pages read by a pool of workers, checked against the main process's reading"};
  app.add_option("directory", dir_arg,
                 "read the files of this directory (default: three made in /tmp)");
  if (auto status = app.parse(argc, argv)) return *status;

  fs::path dir;
  bool temporary = dir_arg.empty();
  if (temporary) {
    char tmpl[] = "/tmp/isola-crawler-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      std::cerr << "mkdtemp failed\n";
      return 1;
    }
    dir = tmpl;
    for (int i = 1; i <= 3; ++i)
      std::ofstream(dir / std::to_string(i)) << "<html>第" << i << "页</html>\n";
  } else {
    dir = dir_arg;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());

  std::vector<std::string> urls;  // 定义要爬取的网页链接
  for (const auto& f : files) urls.push_back(scheme + fs::absolute(f).string());

  {
    isola::pool pool(5);  // 定义进程池: with Pool(processes=5) as pool:
    std::vector<std::string> results = pool.map(crawl, urls);  // 使用进程池并行爬取网页

    int same = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {  // 输出结果
      const std::string& result = results[i];
      std::cout << urls[i] << " (" << result.size()
                << " 字节): " << result.substr(0, result.find('\n')) << std::endl;
      if (result == read_file(files[i].string())) ++same;
    }
    std::cout << "共爬取 " << results.size() << " 个网页, 与主进程直接读取一致的: " << same << " 个"
              << std::endl;
  }
  if (temporary) fs::remove_all(dir);
}
