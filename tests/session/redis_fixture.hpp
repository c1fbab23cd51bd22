// Shared pieces of the Redis store tests: an io_context on its own thread
// and a store factory over a real redis-server.
#pragma once

#include "../support/redis_server.hpp"

#include <gatehouse/adapters/redis/redis_session_store.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::test {

/// An io_context run by `threads` threads until destruction.
class io_runner {
public:
    explicit io_runner(int threads = 1) : guard_(asio::make_work_guard(io_)) {
        for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
    }
    ~io_runner() {
        guard_.reset();
        for (auto& t : threads_) t.join();
    }
    asio::any_io_executor executor() { return io_.get_executor(); }

private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::vector<std::thread> threads_;
};

/// One redis-server for every test case of a program (started on first use).
inline redis_server& shared_redis() {
    static redis_server server;
    return server;
}

inline adapters::redis::redis_session_store_options redis_options(int port,
                                                                   const session::session_store_options& base = {}) {
    adapters::redis::redis_session_store_options o;
    static_cast<session::session_store_options&>(o) = base;
    o.port = port;
    // A prefix per store: test cases sharing the server never see each other.
    o.key_prefix = "gh-test:" + session::random_session_id().substr(0, 8) + ":";
    return o;
}

}  // namespace gatehouse::test
