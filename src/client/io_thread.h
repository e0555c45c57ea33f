// One io_context and the one thread that runs it (private to the client library).
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <future>
#include <optional>
#include <thread>

#include <boost/asio.hpp>

#include "util/thread_name.h"

namespace rlr::client {

class IoThread {
 public:
  IoThread()
      : work_(boost::asio::make_work_guard(io_)), thread_([this] {
          util::set_thread_name("rlr-client-io");
          io_.run();
        }) {}
  ~IoThread() { stop(); }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  [[nodiscard]] boost::asio::io_context& io() { return io_; }
  [[nodiscard]] bool on_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

  template <class F>
  void post(F&& f) {
    boost::asio::post(io_, std::forward<F>(f));
  }

  /// Runs `f` on the io thread and waits for it to finish.
  /// REQUIRES: not called on the io thread.
  template <class F>
  void run_and_wait(F&& f) {
    std::promise<void> done;
    auto fut = done.get_future();
    post([&f, &done] {
      f();
      done.set_value();
    });
    fut.wait();
  }

  /// Stops the loop and joins the thread; pending handlers are dropped.
  /// REQUIRES: not called on the io thread.
  void stop() {
    if (!thread_.joinable()) return;
    work_.reset();
    io_.stop();
    thread_.join();
  }

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace rlr::client
