// Mirrors the Pool example of seed 003 ("# Pool()"): a pool of two
// processes, five apply_async calls of print, then close() and join():
//
//   >>> pool = multiprocessing.Pool(2)    # 创建一个 pool ,容量为 2
//   >>> for i in range(5):
//   ...     _ = pool.apply_async(print, (i,))  # 往 pool 中添加进程
//   ...
//   0
//   1
//   2
//   3
//   4
//   >>> pool.close()  # 关闭 pool ,此后不能再添加进程
//   >>> pool.join()   # 阻塞当前进程,等 pool 里的进程运行结束。这必须先调用 close() 方法
//
// The seed's comments say what close() and join() demand; this twin also
// tries both the wrong way round and prints Python's error (value_error):
// join() before close(), and apply_async after close(). The five numbers
// come from two processes, so their order is not fixed.
#include <iostream>

#include <isola/isola.hpp>

namespace {

void print(int i) { std::cout << i << std::endl; }

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};

  isola::pool pool(2);                                     // 创建一个 pool ,容量为 2
  for (int i = 0; i < 5; ++i) pool.apply_async(print, i);  // 往 pool 中添加进程

  try {
    pool.join();  // 这必须先调用 close() 方法
  } catch (const isola::value_error& e) {
    std::cout << "close() 之前 join(): value_error: " << e.what() << std::endl;
  }
  pool.close();  // 关闭 pool ,此后不能再添加进程
  try {
    pool.apply_async(print, 5);
  } catch (const isola::value_error& e) {
    std::cout << "close() 之后 apply_async: value_error: " << e.what() << std::endl;
  }
  pool.join();  // 阻塞当前进程,等 pool 里的进程运行结束
  std::cout << "join() 返回" << std::endl;
}
