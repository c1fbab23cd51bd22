// redis_session_store against a running Redis: load, touch and create per
// second with `window` operations in flight on one connection (pipelined),
// driven by one io thread. The baseline is redis-benchmark's pipelined
// GET/SET against the same server, which benchmarks/run_session.sh runs in
// the same script and divides by. Skips itself unless GATEHOUSE_REDIS_PORT is
// set (run_session.sh starts a server and sets it).
//   GATEHOUSE_REDIS_PORT=6379 build/benchmarks/bench_session_redis
#include <gatehouse/adapters/redis/redis_session_store.hpp>

#include <asio/io_context.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace s = gatehouse::session;
using gatehouse::adapters::redis::redis_session_store;
using gatehouse::adapters::redis::redis_session_store_options;

namespace {

constexpr std::size_t population_size = 10'000;
constexpr std::size_t operations_per_iteration = 100'000;

int redis_port() {
    const char* port = std::getenv("GATEHOUSE_REDIS_PORT");
    return port ? std::atoi(port) : 0;
}

s::session_record typical_record(std::size_t i) {
    s::session_record r;
    r.account_id = "bench-account-" + std::to_string(i);
    r.roles = {"player"};
    r.permissions = {"account:/account/get", "game:/game/join", "game:/game/leave", "chat:/chat/send"};
    r.node_id = "node-1";
    r.attributes = {{"region", "eu-west"}};
    return r;
}

struct bench_store {
    asio::io_context io;
    std::unique_ptr<redis_session_store> store;
    std::vector<std::string> ids;

    explicit bench_store(int port) {
        redis_session_store_options o;
        o.port = port;
        o.key_prefix = "gh-bench:";
        o.command_timeout = std::chrono::seconds(5);
        store = std::make_unique<redis_session_store>(io.get_executor(), o);
        // Fill the population, 1000 creates in flight at a time.
        std::size_t next = 0, done = 0, failures = 0;
        std::function<void()> issue = [&] {
            if (next >= population_size) return;
            store->create(typical_record(next++), [&](std::error_code ec, s::session_record r) {
                if (ec) ++failures;
                else ids.push_back(std::move(r.session_id));
                ++done;
                issue();
            });
        };
        for (int i = 0; i < 1000; ++i) issue();
        while (done < population_size && failures == 0) io.run_one();
        if (failures) ids.clear();
    }
    ~bench_store() {
        store.reset();
        io.run();
    }
};

bench_store* shared_store() {
    static std::unique_ptr<bench_store> instance;
    if (!instance && redis_port() > 0) instance = std::make_unique<bench_store>(redis_port());
    return instance.get();
}

/// Runs `operations` operations with `window` in flight; `start(i, done)`
/// starts operation i and calls done(ok) when it completes.
template <class Start>
std::size_t run_window(asio::io_context& io, std::size_t operations, std::size_t window, Start start) {
    std::size_t issued = 0, completed = 0, failures = 0;
    std::function<void()> next = [&] {
        if (issued >= operations) return;
        const auto i = issued++;
        start(i, [&](bool ok) {
            failures += ok ? 0 : 1;
            ++completed;
            next();
        });
    };
    for (std::size_t i = 0; i < window; ++i) next();
    io.restart();
    while (completed < operations) io.run_one();
    return failures;
}

void report(benchmark::State& state, std::size_t failures) {
    if (failures) state.SkipWithError("operations failed");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(operations_per_iteration));
}

void BM_redis_load(benchmark::State& state) {
    auto* b = shared_store();
    if (!b || b->ids.empty()) return state.SkipWithError("set GATEHOUSE_REDIS_PORT to a running Redis");
    std::size_t failures = 0;
    for (auto _ : state)
        failures += run_window(b->io, operations_per_iteration, static_cast<std::size_t>(state.range(0)),
                               [&](std::size_t i, auto done) {
                                   b->store->load(b->ids[(i * 7919) % b->ids.size()],
                                                  [done](std::error_code ec, s::session_record) { done(!ec); });
                               });
    report(state, failures);
}

void BM_redis_touch(benchmark::State& state) {
    auto* b = shared_store();
    if (!b || b->ids.empty()) return state.SkipWithError("set GATEHOUSE_REDIS_PORT to a running Redis");
    std::size_t failures = 0;
    for (auto _ : state)
        failures += run_window(b->io, operations_per_iteration, static_cast<std::size_t>(state.range(0)),
                               [&](std::size_t i, auto done) {
                                   b->store->touch(b->ids[(i * 7919) % b->ids.size()],
                                                   [done](std::error_code ec) { done(!ec); });
                               });
    report(state, failures);
}

void BM_redis_create_revoke(benchmark::State& state) {
    auto* b = shared_store();
    if (!b || b->ids.empty()) return state.SkipWithError("set GATEHOUSE_REDIS_PORT to a running Redis");
    std::size_t failures = 0;
    for (auto _ : state)
        failures += run_window(b->io, operations_per_iteration / 2, static_cast<std::size_t>(state.range(0)),
                               [&](std::size_t i, auto done) {
                                   b->store->create(typical_record(i), [b, done](std::error_code ec, s::session_record r) {
                                       if (ec) return done(false);
                                       b->store->revoke(r.session_id, [done](std::error_code ec2) { done(!ec2); });
                                   });
                               });
    if (failures) state.SkipWithError("operations failed");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(operations_per_iteration));  // create + revoke each
}

}  // namespace

BENCHMARK(BM_redis_load)->Arg(256)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_redis_touch)->Arg(256)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_redis_create_revoke)->Arg(256)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

BENCHMARK_MAIN();
