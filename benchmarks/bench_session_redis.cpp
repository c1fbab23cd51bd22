// redis_session_store against a running Redis: load, touch and create per
// second with `window` operations in flight on one connection (pipelined),
// driven by one io thread. The window, 800, is what redis-benchmark keeps in
// flight with -c 50 -P 16, the baseline benchmarks/run_session.sh runs
// against the same server in the same script and divides by. Besides the
// rate, each benchmark reports the Redis server's CPU time per operation
// (redis_us_per_op, from INFO cpu); the client's is cpu_time / operations.
// Skips itself unless GATEHOUSE_REDIS_PORT is set (run_session.sh starts a
// server and sets it).
//   GATEHOUSE_REDIS_PORT=6379 build/benchmarks/bench_session_redis
#include <gatehouse/adapters/redis/redis_session_store.hpp>

#include <asio/io_context.hpp>

#include <benchmark/benchmark.h>

#include <hiredis/hiredis.h>

#include <cstdlib>
#include <cstring>
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

/// CPU seconds the Redis server has used so far (user + system), or a
/// negative number when it cannot be read. A blocking side connection, used
/// only outside the timed loops.
double redis_cpu_seconds() {
    redisContext* c = redisConnect("127.0.0.1", redis_port());
    double total = -1;
    if (c != nullptr && c->err == 0) {
        if (auto* reply = static_cast<redisReply*>(redisCommand(c, "INFO cpu"))) {
            if (reply->type == REDIS_REPLY_STRING) {
                const char* sys = std::strstr(reply->str, "used_cpu_sys:");
                const char* user = std::strstr(reply->str, "used_cpu_user:");
                if (sys && user)
                    total = std::atof(sys + std::strlen("used_cpu_sys:")) +
                            std::atof(user + std::strlen("used_cpu_user:"));
            }
            freeReplyObject(reply);
        }
    }
    if (c != nullptr) redisFree(c);
    return total;
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

void report(benchmark::State& state, std::size_t failures, double redis_cpu_before) {
    if (failures) state.SkipWithError("operations failed");
    const auto operations = static_cast<double>(state.iterations()) * operations_per_iteration;
    state.SetItemsProcessed(static_cast<std::int64_t>(operations));
    const double redis_cpu_after = redis_cpu_seconds();
    if (redis_cpu_before >= 0 && redis_cpu_after >= 0)
        state.counters["redis_us_per_op"] = (redis_cpu_after - redis_cpu_before) * 1e6 / operations;
}

void BM_redis_load(benchmark::State& state) {
    auto* b = shared_store();
    if (!b || b->ids.empty()) return state.SkipWithError("set GATEHOUSE_REDIS_PORT to a running Redis");
    std::size_t failures = 0;
    const double redis_cpu_before = redis_cpu_seconds();
    for (auto _ : state)
        failures += run_window(b->io, operations_per_iteration, static_cast<std::size_t>(state.range(0)),
                               [&](std::size_t i, auto done) {
                                   b->store->load(b->ids[(i * 7919) % b->ids.size()],
                                                  [done](std::error_code ec, s::session_record) { done(!ec); });
                               });
    report(state, failures, redis_cpu_before);
}

void BM_redis_touch(benchmark::State& state) {
    auto* b = shared_store();
    if (!b || b->ids.empty()) return state.SkipWithError("set GATEHOUSE_REDIS_PORT to a running Redis");
    std::size_t failures = 0;
    const double redis_cpu_before = redis_cpu_seconds();
    for (auto _ : state)
        failures += run_window(b->io, operations_per_iteration, static_cast<std::size_t>(state.range(0)),
                               [&](std::size_t i, auto done) {
                                   b->store->touch(b->ids[(i * 7919) % b->ids.size()],
                                                   [done](std::error_code ec) { done(!ec); });
                               });
    report(state, failures, redis_cpu_before);
}

void BM_redis_create_revoke(benchmark::State& state) {
    auto* b = shared_store();
    if (!b || b->ids.empty()) return state.SkipWithError("set GATEHOUSE_REDIS_PORT to a running Redis");
    std::size_t failures = 0;
    const double redis_cpu_before = redis_cpu_seconds();
    for (auto _ : state)
        failures += run_window(b->io, operations_per_iteration / 2, static_cast<std::size_t>(state.range(0)),
                               [&](std::size_t i, auto done) {
                                   b->store->create(typical_record(i), [b, done](std::error_code ec, s::session_record r) {
                                       if (ec) return done(false);
                                       b->store->revoke(r.session_id, [done](std::error_code ec2) { done(!ec2); });
                                   });
                               });
    report(state, failures, redis_cpu_before);  // operations_per_iteration: a create and a revoke each
}

}  // namespace

BENCHMARK(BM_redis_load)->Arg(800)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_redis_touch)->Arg(800)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_redis_create_revoke)->Arg(800)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

BENCHMARK_MAIN();
