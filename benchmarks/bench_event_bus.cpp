// Events per second between gateway nodes: node A publishes targeted
// (to_session) and group events that node B receives, with `window`
// publishes in flight, through the in-process memory_event_bus and through
// redis_event_bus in the same run; the printed ratio is Redis / in-process.
// Also the latency of a revocation reaching two other nodes (3 nodes), the
// cluster's "revoked everywhere" figure (issue 7 asks for < 200 ms).
//
// The Redis benchmarks use GATEHOUSE_REDIS_PORT when set, else start a
// private redis-server on a free loopback port (skipped when there is none).
//   build/benchmarks/bench_event_bus
//   GATEHOUSE_REDIS_PORT=6379 build/benchmarks/bench_event_bus --benchmark_filter=redis
#include <gatehouse/cluster/memory_event_bus.hpp>
#if __has_include(<hiredis/hiredis.h>)
#include <gatehouse/adapters/redis/redis_event_bus.hpp>

#include "../tests/support/redis_server.hpp"
#define GATEHOUSE_BENCH_WITH_REDIS 1
#endif

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace cl = gatehouse::cluster;

namespace {

constexpr std::size_t events_per_iteration = 20'000;
const std::string payload(200, 'p');  // a typical pushed JSON event

/// Rates measured in this run, for the ratio printed at the end.
std::map<std::string, double>& rates() {
    static std::map<std::string, double> r;
    return r;
}

/// One io thread per node, as separate gateway processes would have.
struct node_thread {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{asio::make_work_guard(io)};
    std::thread thread{[this] { io.run(); }};
    ~node_thread() {
        guard.reset();
        thread.join();
    }
};

/// Counts deliveries and lets the benchmark thread wait for a number of them.
struct counter {
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t received = 0;
    std::chrono::steady_clock::time_point last{};

    cl::event_bus::message_handler handler() {
        return [this](const cl::bus_message&) {
            std::lock_guard lock(mutex);
            ++received;
            last = std::chrono::steady_clock::now();
            changed.notify_all();
        };
    }
    bool wait_for(std::size_t n) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, std::chrono::seconds(30), [&] { return received >= n; });
    }
};

template <class F>
std::error_code await(F start) {
    std::promise<std::error_code> p;
    auto f = p.get_future();
    start([&p](std::error_code ec) { p.set_value(ec); });
    return f.get();
}

struct cluster {
    // Destroyed last: a handler call may still be running when close() returns.
    std::vector<std::unique_ptr<counter>> counters;
    std::vector<std::unique_ptr<node_thread>> threads;
    std::vector<std::shared_ptr<cl::event_bus>> buses;
    std::shared_ptr<cl::memory_event_hub> hub = std::make_shared<cl::memory_event_hub>();
#if GATEHOUSE_BENCH_WITH_REDIS
    std::unique_ptr<gatehouse::test::redis_server> own_redis;
#endif

    bool build(bool redis, int nodes) {
        int port = 0;
#if GATEHOUSE_BENCH_WITH_REDIS
        if (redis) {
            if (const char* p = std::getenv("GATEHOUSE_REDIS_PORT")) {
                port = std::atoi(p);
            } else {
                try {
                    own_redis = std::make_unique<gatehouse::test::redis_server>();
                    port = own_redis->port();
                } catch (const std::exception&) {
                    return false;
                }
            }
        }
#else
        if (redis) return false;
#endif
        for (int i = 0; i < nodes; ++i) {
            threads.push_back(std::make_unique<node_thread>());
            counters.push_back(std::make_unique<counter>());
            const auto id = "bench-" + std::to_string(i);
#if GATEHOUSE_BENCH_WITH_REDIS
            if (redis) {
                gatehouse::adapters::redis::redis_event_bus_options o;
                o.node_id = id;
                o.port = port;
                o.key_prefix = "gh-bench-bus:";
                o.command_timeout = std::chrono::seconds(5);
                o.stream_max_length = 100'000;
                buses.push_back(std::make_shared<gatehouse::adapters::redis::redis_event_bus>(
                    threads.back()->io.get_executor(), o));
            }
#endif
            if (!redis) {
                cl::memory_event_bus_options o;
                o.node_id = id;
                buses.push_back(std::make_shared<cl::memory_event_bus>(hub, threads.back()->io.get_executor(), o));
            }
            auto& c = *counters.back();
            if (await([&](auto done) { buses.back()->subscribe(c.handler(), done); })) return false;
        }
        return true;
    }

    ~cluster() {
        for (auto& b : buses) b->close();
        buses.clear();
    }
};

/// Publishes `total` events from node 0 with `window` in flight.
bool publish_window(cl::event_bus& bus, cl::message_kind kind, const std::string& target, std::size_t total,
                    std::size_t window) {
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t in_flight = 0, failures = 0;
    for (std::size_t i = 0; i < total; ++i) {
        {
            std::unique_lock lock(mutex);
            changed.wait(lock, [&] { return in_flight < window; });
            ++in_flight;
        }
        bus.publish(kind, target, payload, [&](std::error_code ec, std::size_t) {
            std::lock_guard lock(mutex);
            --in_flight;
            if (ec) ++failures;
            changed.notify_all();
        });
    }
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return in_flight == 0; });
    return failures == 0;
}

void throughput(benchmark::State& state, bool redis, cl::message_kind kind) {
    cluster c;
    if (!c.build(redis, 2)) {
        state.SkipWithError("no redis-server available");
        return;
    }
    const auto interest = kind == cl::message_kind::to_group ? cl::interest_kind::group : cl::interest_kind::session;
    if (await([&](auto done) { c.buses[1]->declare_interest(interest, "target-1", done); })) {
        state.SkipWithError("declare failed");
        return;
    }
    std::size_t expected = 0;
    for (auto _ : state) {
        expected += events_per_iteration;
        if (!publish_window(*c.buses[0], kind, "target-1", events_per_iteration,
                            static_cast<std::size_t>(state.range(0))) ||
            !c.counters[1]->wait_for(expected)) {
            state.SkipWithError("publish failed or events lost");
            return;
        }
    }
    const auto items = static_cast<std::int64_t>(state.iterations() * events_per_iteration);
    state.SetItemsProcessed(items);
    const auto s = c.buses[1]->stats();
    state.counters["duplicates"] = static_cast<double>(s.duplicates);
    state.counters["delivered"] = static_cast<double>(s.delivered);
}

void revocation_latency(benchmark::State& state, bool redis) {
    cluster c;
    if (!c.build(redis, 3)) {
        state.SkipWithError("no redis-server available");
        return;
    }
    for (int i = 1; i <= 2; ++i)
        if (await([&](auto done) { c.buses[static_cast<std::size_t>(i)]->declare_interest(cl::interest_kind::account, "acc", done); })) {
            state.SkipWithError("declare failed");
            return;
        }
    std::size_t expected = 0;
    double total_us = 0, worst_us = 0;
    for (auto _ : state) {
        ++expected;
        const auto start = std::chrono::steady_clock::now();
        c.buses[0]->revoke_account("acc", "kicked");
        if (!c.counters[1]->wait_for(expected) || !c.counters[2]->wait_for(expected)) {
            state.SkipWithError("revocation lost");
            return;
        }
        const auto last = std::max(c.counters[1]->last, c.counters[2]->last);
        const double us = std::chrono::duration<double, std::micro>(last - start).count();
        total_us += us;
        worst_us = std::max(worst_us, us);
    }
    state.counters["mean_us"] = total_us / static_cast<double>(state.iterations());
    state.counters["worst_us"] = worst_us;
}

void BM_memory_to_session(benchmark::State& state) { throughput(state, false, cl::message_kind::to_session); }
void BM_redis_to_session(benchmark::State& state) { throughput(state, true, cl::message_kind::to_session); }
void BM_memory_to_group(benchmark::State& state) { throughput(state, false, cl::message_kind::to_group); }
void BM_redis_to_group(benchmark::State& state) { throughput(state, true, cl::message_kind::to_group); }
void BM_memory_revocation_3_nodes(benchmark::State& state) { revocation_latency(state, false); }
void BM_redis_revocation_3_nodes(benchmark::State& state) { revocation_latency(state, true); }

}  // namespace

BENCHMARK(BM_memory_to_session)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_redis_to_session)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_memory_to_group)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_redis_to_group)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_memory_revocation_3_nodes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_redis_revocation_3_nodes)->UseRealTime()->Unit(benchmark::kMicrosecond);

namespace {

/// Keeps the console output and remembers each benchmark's rate.
class rate_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& run : runs) {
            auto it = run.counters.find("items_per_second");
            if (it != run.counters.end()) rates()[run.benchmark_name()] = it->second.value;
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

void print_ratio(const char* what, const std::string& redis, const std::string& memory) {
    const auto r = rates().find(redis), m = rates().find(memory);
    if (r == rates().end() || m == rates().end() || m->second <= 0) return;
    std::printf("%s: redis %.0f events/s, in-process %.0f events/s, ratio redis/in-process = %.3f\n", what,
                r->second, m->second, r->second / m->second);
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    rate_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    print_ratio("to_session", "BM_redis_to_session/256/real_time", "BM_memory_to_session/256/real_time");
    print_ratio("to_group", "BM_redis_to_group/256/real_time", "BM_memory_to_group/256/real_time");
    benchmark::Shutdown();
    return 0;
}
