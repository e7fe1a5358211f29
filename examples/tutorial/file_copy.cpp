// Mirrors net04_file_copy.py (seed 000, section 5.7 "多进程实现文件拷贝"):
// copies the files of a directory into "<directory>-备份", one process per
// file; each child tells the parent through a queue which file it has
// finished, and the parent shows the progress on one line, rewritten with
// '\r', until 100%:
//
//   def copy_file(file_name, src, dest, queue):
//       '''拷贝文件的函数'''
//       src_file = open(src + '/' + file_name, 'rb')
//       dest_file = open(dest + '/' + file_name, 'wb')
//       while True:
//           time.sleep(random.random())
//           data = src_file.read(4096)
//           if data:
//               dest_file.write(data)
//           else:
//               break
//       src_file.close()
//       dest_file.close()
//       queue.put(file_name)
//
//   if __name__ == '__main__':
//       src_path = input('请输入你要拷贝的目录名:')
//       try:
//           dest_path = src_path + '-备份'
//           os.mkdir(dest_path)
//           file_list = os.listdir(src_path)
//       except Exception as e:
//           print(e)
//       else:
//           queue = multiprocessing.Queue()
//           for file in file_list:
//               pro = multiprocessing.Process(
//                   target=copy_file, args=(file, src_path, dest_path, queue))
//               pro.start()
//           count = 0
//           while True:
//               queue.get()
//               count += 1
//               print('\r当前进度为%d%%' % (100.0 * count / len(file_list)),end='')
//               if count == len(file_list):
//                   break
//
//   file_copy [directory [seconds [fork|forkserver|spawn]]]
//
// The directory to copy (asked for on stdin, as the seed does, if not
// given); the longest sleep before each 4096-byte block, a random fraction
// of it (default 1, the seed's random.random()); the start method (default
// fork). As in the seed, sub-directories are not copied ("文件夹嵌套不考虑"):
// only the regular files are. The progress line ends with a newline once it
// reaches 100%.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <isola/isola.hpp>
#include <isola/queue.hpp>

#include "example_cli.hpp"

namespace fs = std::filesystem;

namespace {

/// 拷贝文件的函数
void copy_file(const std::string& file_name, const std::string& src, const std::string& dest,
               isola::queue<std::string> queue, double seconds) {
  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> random(0.0, 1.0);

  std::ifstream src_file(src + '/' + file_name, std::ios::binary);
  std::ofstream dest_file(dest + '/' + file_name, std::ios::binary);
  if (!src_file || !dest_file) throw std::runtime_error("cannot open " + file_name);
  std::vector<char> data(4096);
  while (true) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds * random(rng)));
    src_file.read(data.data(), static_cast<std::streamsize>(data.size()));
    std::streamsize n = src_file.gcount();
    if (n > 0) {
      dest_file.write(data.data(), n);
    } else {
      break;
    }
  }
  src_file.close();
  dest_file.close();
  if (!dest_file) throw std::runtime_error("cannot write " + dest + '/' + file_name);
  queue.put(file_name);
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  std::string src_path;
  double seconds = 1.0;
  isola_example::command_line app{"a directory copied one process per file, with a progress line"};
  app.add_option("directory", src_path, "directory to copy (asked for when not given)");
  app.add_option("seconds", seconds, "seconds each copy sleeps");
  isola_example::add_start_method(app);
  if (auto status = app.parse(argc, argv)) return *status;
  if (src_path.empty()) {
    std::cout << "请输入你要拷贝的目录名:" << std::flush;
    std::getline(std::cin, src_path);
  }

  std::string dest_path;
  std::vector<std::string> file_list;
  try {
    dest_path = src_path + "-备份";
    if (!fs::create_directory(dest_path))
      throw fs::filesystem_error("mkdir", dest_path, std::make_error_code(std::errc::file_exists));
    for (const auto& entry : fs::directory_iterator(src_path))
      if (entry.is_regular_file()) file_list.push_back(entry.path().filename().string());
  } catch (const std::exception& e) {
    std::cout << e.what() << std::endl;
    return 0;
  }

  isola::queue<std::string> queue;
  for (const auto& file : file_list) {
    isola::process pro(copy_file, file, src_path, dest_path, queue, seconds);
    pro.start();
  }

  std::size_t count = 0;
  while (count < file_list.size()) {
    queue.get();
    count += 1;
    std::printf("\r当前进度为%d%%", static_cast<int>(100.0 * static_cast<double>(count) /
                                                     static_cast<double>(file_list.size())));
    std::fflush(stdout);
  }
  std::cout << std::endl;
}
