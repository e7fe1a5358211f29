// Mirrors seed 004 "日志": multiprocessing.log_to_stderr(level) makes the
// library log what it does, one line per record tagged with the level and
// the process name, e.g. "[INFO/process-1] child process calling self.run()".
// The level must be set before start(): a child starts with its parent's.
// get_logger() hands out the same logger for one's own records.
#include <iostream>

#include <isola/isola.hpp>

void worker() {
  isola::get_logger().info("doing some work");
  std::cout << "working!" << std::endl;
}

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  isola::log_to_stderr(isola::log_level::info);  // multiprocess.log_to_stderr(logging.INFO)
  isola::process p(worker);
  p.start();
  p.join();

  // 也可以直接拿到这个日志对象来处理
  auto& logger = isola::get_logger();
  logger.set_level(isola::log_level::info);
  logger.info("worker exited with exitcode " + std::to_string(*p.exitcode()));
}
