// Events per second delivered to WebSocket clients by gateway nodes: the
// same group events pushed by the node that holds the clients (the
// baseline) and by another node, through the in-process memory_event_bus and
// through redis_event_bus, in one run. Clients are raw sockets on loopback
// counting event frames (benchmarks/loadgen/ws_frame.hpp); each iteration
// pushes a batch to a group of `clients` sessions and waits until every
// client has every event. Printed: the cross-node / same-node ratios.
//
// Redis: GATEHOUSE_REDIS_PORT when set, else a private redis-server on a free
// loopback port (the Redis case is skipped when there is none).
//   build/benchmarks/bench_cluster_push
#include <gatehouse/cluster/memory_event_bus.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/server/gateway_impl.hpp>
#include <gatehouse/session/memory_session_store.hpp>
#if __has_include(<hiredis/hiredis.h>)
#include <gatehouse/adapters/redis/redis_event_bus.hpp>

#include "../tests/support/redis_server.hpp"
#define GATEHOUSE_BENCH_WITH_REDIS 1
#endif

#include "../tests/cluster/io_runner.hpp"
#include "loadgen/ws_frame.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace cl = gatehouse::cluster;
namespace s = gatehouse::server;
namespace lg = gatehouse::loadgen;

namespace {

constexpr std::size_t clients_per_group = 8;
constexpr std::size_t batch = 2000;

/// Accepts "Bearer account|session-key" (a benchmark, not a security test).
class plain_validator final : public gatehouse::auth::token_validator {
public:
    void async_validate(const gatehouse::auth::credential& cred, completion done) override {
        const auto bar = cred.value.find('|');
        gatehouse::auth::identity who;
        if (bar == std::string::npos) return done(make_error_code(gatehouse::auth::auth_errc::bad_signature), who);
        who.subject = cred.value.substr(0, bar);
        who.session_key = cred.value.substr(bar + 1);
        done({}, std::move(who));
    }
};

/// One gateway node on an ephemeral port, run on its own thread.
struct node {
    node(std::shared_ptr<cl::event_bus> bus, std::shared_ptr<gatehouse::session::session_store> store) {
        s::gateway_options o;
        o.port = 0;
        o.guid_salt = "bench";
        o.manifest_delay = std::chrono::milliseconds(0);
        o.ping_interval = std::chrono::milliseconds(0);
        o.max_send_queue_bytes = 256u << 20;  // a batch is pushed at once
        o.connects_per_second = 1e6;
        o.connect_burst = 1000000;
        o.event_bus = std::move(bus);
        gw = std::make_unique<s::gateway>(o, std::make_shared<plain_validator>(), std::move(store));
        if (gw->listen()) throw std::runtime_error("bench_cluster_push: listen failed");
        thread = std::thread([this] { gw->run(); });
    }
    ~node() {
        gw->stop();
        thread.join();
    }
    std::unique_ptr<s::gateway> gw;
    std::thread thread;
};

/// A client counting the event frames it receives, on its own thread.
class counting_client {
public:
    counting_client(std::uint16_t port, const std::string& account, const std::string& session) : socket_(io_) {
        socket_.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        socket_.set_option(asio::ip::tcp::no_delay(true));
        asio::write(socket_, asio::buffer(lg::upgrade_request("127.0.0.1", "/connect", "Bearer " + account + "|" + session)));
        thread_ = std::thread([this] { read_loop(); });
    }
    ~counting_client() {
        std::error_code ignored;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        thread_.join();
    }
    std::uint64_t events() const { return events_.load(std::memory_order_acquire); }
    bool ready() const { return manifest_.load(std::memory_order_acquire); }

private:
    void read_loop() {
        std::string in;
        char buf[65536];
        bool upgraded = false;
        for (;;) {
            std::error_code ec;
            const auto n = socket_.read_some(asio::buffer(buf), ec);
            if (ec) return;
            in.append(buf, n);
            std::size_t pos = 0;
            if (!upgraded) {
                const auto end = in.find("\r\n\r\n");
                if (end == std::string::npos) continue;
                if (lg::upgrade_status(in.substr(0, end)) != 101) return;
                upgraded = true;
                pos = end + 4;
            }
            for (;;) {
                lg::ws_frame f;
                const auto r = lg::parse_server_frame(std::string_view(in).substr(pos), 1 << 24, f);
                if (r != lg::parse_result::complete) break;
                pos += f.size;
                if (f.opcode != lg::ws_opcode::binary) continue;
                if (!manifest_.load(std::memory_order_relaxed))
                    manifest_.store(true, std::memory_order_release);  // the first event is the manifest
                else
                    events_.fetch_add(1, std::memory_order_release);
            }
            in.erase(0, pos);
        }
    }

    asio::io_context io_;
    asio::ip::tcp::socket socket_;
    std::thread thread_;
    std::atomic<std::uint64_t> events_{0};
    std::atomic<bool> manifest_{false};
};


/// Two nodes (pusher, holder) and the holder's clients in group "g".
struct setup {
    std::unique_ptr<gatehouse::test::io_runner> runner = std::make_unique<gatehouse::test::io_runner>();
    std::shared_ptr<gatehouse::session::memory_session_store> store =
        std::make_shared<gatehouse::session::memory_session_store>();
    std::vector<std::shared_ptr<cl::event_bus>> buses;
    std::unique_ptr<node> pusher, holder;
    std::vector<std::unique_ptr<counting_client>> clients;

    void start(bool cross) {
        holder = std::make_unique<node>(buses.empty() ? nullptr : buses[1], store);
        if (cross) pusher = std::make_unique<node>(buses[0], store);
        for (std::size_t i = 0; i < clients_per_group; ++i) {
            char session[40];
            std::snprintf(session, sizeof session, "00000000-0000-4000-8000-%012zu", i + 1);
            clients.push_back(std::make_unique<counting_client>(holder->gw->local_port(), "player", session));
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (const auto& c : clients)
            while (!c->ready()) {
                if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("clients not ready");
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        for (std::size_t i = 0; i < clients_per_group; ++i) {
            char session[40];
            std::snprintf(session, sizeof session, "00000000-0000-4000-8000-%012zu", i + 1);
            if (holder->gw->join_group(session, "g")) throw std::runtime_error("join_group failed");
        }
        if (cross) {
            // The group's declaration reaches the bus asynchronously: probe.
            for (int i = 0; i < 5000 && clients[0]->events() == 0; ++i) {
                pusher->gw->push_to_group("g", "bench.probe");
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    s::gateway& source() { return pusher ? *pusher->gw : *holder->gw; }

    ~setup() {
        clients.clear();
        pusher.reset();
        holder.reset();
        for (auto& b : buses) b->close();
        buses.clear();
    }
};

void run_batches(benchmark::State& state, setup& env) {
    const nlohmann::json body = {{"x", 1}, {"text", "a game event of ordinary size"}};
    for (auto _ : state) {
        std::vector<std::uint64_t> start;
        for (const auto& c : env.clients) start.push_back(c->events());
        for (std::size_t i = 0; i < batch; ++i) env.source().push_to_group("g", "bench.event", body);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        for (std::size_t i = 0; i < env.clients.size(); ++i)
            while (env.clients[i]->events() < start[i] + batch) {
                if (std::chrono::steady_clock::now() > deadline) {
                    state.SkipWithError("events lost or stuck");
                    return;
                }
                std::this_thread::yield();
            }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch * clients_per_group));
}

void BM_same_node(benchmark::State& state) {
    setup env;
    env.start(false);
    run_batches(state, env);
}

void BM_cross_node_memory_bus(benchmark::State& state) {
    setup env;
    auto hub = std::make_shared<cl::memory_event_hub>();
    for (const char* id : {"pusher", "holder"}) {
        cl::memory_event_bus_options o;
        o.node_id = id;
        env.buses.push_back(std::make_shared<cl::memory_event_bus>(hub, env.runner->executor(), o));
    }
    env.start(true);
    run_batches(state, env);
}

#if defined(GATEHOUSE_BENCH_WITH_REDIS)
int redis_port() {
    if (const char* p = std::getenv("GATEHOUSE_REDIS_PORT")) return std::atoi(p);
    static std::unique_ptr<gatehouse::test::redis_server> server;
    if (!server) {
        try {
            server = std::make_unique<gatehouse::test::redis_server>();
        } catch (const std::exception&) {
            return 0;
        }
    }
    return server->port();
}

void BM_cross_node_redis_bus(benchmark::State& state) {
    const int port = redis_port();
    if (port == 0) {
        state.SkipWithError("no redis-server");
        return;
    }
    setup env;
    for (const char* id : {"pusher", "holder"}) {
        gatehouse::adapters::redis::redis_event_bus_options o;
        o.node_id = id;
        o.port = port;
        env.buses.push_back(
            std::make_shared<gatehouse::adapters::redis::redis_event_bus>(env.runner->executor(), o));
    }
    env.start(true);
    run_batches(state, env);
}
#endif

std::map<std::string, double>& rates() {
    static std::map<std::string, double> r;
    return r;
}

class rate_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& run : runs) {
            const auto it = run.counters.find("items_per_second");
            if (it != run.counters.end()) rates()[run.benchmark_name()] = it->second.value;
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

/// The rate of the benchmark whose name starts with `prefix`, or 0.
double rate_of(const std::string& prefix) {
    for (const auto& entry : rates())
        if (entry.first.rfind(prefix, 0) == 0) return entry.second;
    return 0;
}

void print_ratio(const char* what, const std::string& name) {
    const auto base = rate_of("BM_same_node/");
    const auto rate = rate_of(name + "/");
    if (base <= 0 || rate <= 0) return;
    std::printf("%s: %.0f events/s delivered vs %.0f within one node: ratio %.3f\n", what, rate, base, rate / base);
}

}  // namespace

BENCHMARK(BM_same_node)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_cross_node_memory_bus)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
#if defined(GATEHOUSE_BENCH_WITH_REDIS)
BENCHMARK(BM_cross_node_redis_bus)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
#endif

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    rate_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    std::printf("group events to %zu clients on one node, pushed %zu at a time:\n", clients_per_group, batch);
    print_ratio("  pushed by another node, in-process bus", "BM_cross_node_memory_bus");
    print_ratio("  pushed by another node, Redis bus     ", "BM_cross_node_redis_bus");
    benchmark::Shutdown();
    return 0;
}
