// An io_context run by a few threads until destruction, for the cluster tests.
#pragma once

// Standard headers before Asio's (see gatehouse/detail/config.hpp).
#include <thread>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

namespace gatehouse::test {

class io_runner {
public:
    explicit io_runner(int threads = 1) : guard_(asio::make_work_guard(io_)) {
        for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
    }
    ~io_runner() { stop(); }
    io_runner(const io_runner&) = delete;
    io_runner& operator=(const io_runner&) = delete;

    asio::any_io_executor executor() { return io_.get_executor(); }

    /// Lets the threads finish the queued work and joins them.
    void stop() {
        guard_.reset();
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }

    /// Stops at once, leaving queued work unrun (what a crash looks like to
    /// the rest of the cluster).
    void halt() {
        io_.stop();
        stop();
    }

private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::vector<std::thread> threads_;
};

}  // namespace gatehouse::test
