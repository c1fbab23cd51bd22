// memory_session_store on one core with 100,000 live sessions: loads, touches
// and creates per second, beside a baseline measured in the same run: a
// single std::unordered_map<std::string, session_record> behind one mutex
// (lookup + copy of the record, the least any load can do).
//   build/benchmarks/bench_session_memory [--benchmark_min_time=1]
#include <gatehouse/session/memory_session_store.hpp>

#include <benchmark/benchmark.h>

#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace s = gatehouse::session;

namespace {

constexpr std::size_t live_sessions = 100'000;

s::session_record typical_record(std::size_t i) {
    s::session_record r;
    r.account_id = "account-" + std::to_string(i);
    r.roles = {"player"};
    r.permissions = {"account:/account/get", "game:/game/join", "game:/game/leave", "chat:/chat/send"};
    r.node_id = "node-1";
    r.attributes = {{"region", "eu-west"}};
    return r;
}

struct population {
    s::memory_session_store store;
    std::vector<std::string> ids;
    std::vector<std::size_t> order;  // random visiting order, so caches do not flatter us

    population() {
        ids.reserve(live_sessions);
        for (std::size_t i = 0; i < live_sessions; ++i)
            store.create(typical_record(i), [&](std::error_code ec, s::session_record r) {
                if (ec) std::abort();
                ids.push_back(std::move(r.session_id));
            });
        order.resize(1 << 20);
        std::mt19937_64 rng(42);
        for (auto& o : order) o = rng() % live_sessions;
    }
};

population& shared_population() {
    static population p;
    return p;
}

void BM_baseline_locked_map_load(benchmark::State& state) {
    auto& p = shared_population();
    std::mutex mutex;
    std::unordered_map<std::string, s::session_record> map;
    for (std::size_t i = 0; i < live_sessions; ++i) map.emplace(p.ids[i], typical_record(i));
    std::size_t k = 0;
    for (auto _ : state) {
        const auto& id = p.ids[p.order[k++ & (p.order.size() - 1)]];
        s::session_record copy;
        {
            std::lock_guard<std::mutex> lock(mutex);
            copy = map.find(id)->second;
        }
        benchmark::DoNotOptimize(copy);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_memory_load(benchmark::State& state) {
    auto& p = shared_population();
    std::size_t k = 0, failures = 0;
    for (auto _ : state) {
        p.store.load(p.ids[p.order[k++ & (p.order.size() - 1)]], [&](std::error_code ec, s::session_record r) {
            failures += ec ? 1 : 0;
            benchmark::DoNotOptimize(r);
        });
    }
    if (failures) state.SkipWithError("load failed");
    state.SetItemsProcessed(state.iterations());
    if (state.thread_index() == 0) state.counters["live"] = static_cast<double>(p.store.size());
}

void BM_memory_touch(benchmark::State& state) {
    auto& p = shared_population();
    std::size_t k = 0, failures = 0;
    for (auto _ : state)
        p.store.touch(p.ids[p.order[k++ & (p.order.size() - 1)]], [&](std::error_code ec) { failures += ec ? 1 : 0; });
    if (failures) state.SkipWithError("touch failed");
    state.SetItemsProcessed(state.iterations());
}

void BM_memory_create_revoke(benchmark::State& state) {
    s::memory_session_store store;
    const auto record = typical_record(1);
    std::string id;
    for (auto _ : state) {
        store.create(record, [&](std::error_code, s::session_record r) { id = std::move(r.session_id); });
        store.revoke(id, [](std::error_code) {});
    }
    state.SetItemsProcessed(state.iterations() * 2);
}

}  // namespace

BENCHMARK(BM_baseline_locked_map_load);
BENCHMARK(BM_memory_load);
BENCHMARK(BM_memory_load)->Threads(2)->UseRealTime();
BENCHMARK(BM_memory_touch);
BENCHMARK(BM_memory_create_revoke);

BENCHMARK_MAIN();
