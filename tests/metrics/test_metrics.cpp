#include <gatehouse/server/metrics.hpp>

#include <doctest/doctest.h>

#include "../support/exposition.hpp"

#include <map>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

namespace s = gatehouse::server;
namespace p = gatehouse::protocol;
using namespace std::chrono_literals;

namespace {
std::map<std::string, std::string> samples(const std::string& text) { return gatehouse::test::exposition_samples(text); }
}  // namespace

TEST_CASE("metrics: a fresh sink renders every family at zero") {
    s::prometheus_metrics m;
    const auto all = samples(m.render());
    CHECK(all.at("gatehouse_connections") == "0");
    CHECK(all.at("gatehouse_upgrades_total{result=\"accepted\",status=\"101\"}") == "0");
    CHECK(all.at("gatehouse_upgrades_total{result=\"over_capacity\",status=\"503\"}") == "0");
    CHECK(all.at("gatehouse_responses_total{code=\"30\",name=\"ServiceNotFound\"}") == "0");
    CHECK(all.at("gatehouse_responses_total{code=\"51\",name=\"Service_NotFound\"}") == "0");
    CHECK(all.at("gatehouse_disconnects_total{code=\"4005\"}") == "0");
    CHECK(all.at("gatehouse_disconnects_total{code=\"other\"}") == "0");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"+Inf\"}") == "0");
    CHECK(all.at("gatehouse_handler_latency_seconds_count") == "0");
    // every known response code, and nothing else while unused
    std::size_t codes = 0;
    for (const auto& kv : all) codes += kv.first.rfind("gatehouse_responses_total{", 0) == 0 ? 1 : 0;
    CHECK(codes == 19);
}

TEST_CASE("metrics: counts land in the right series") {
    s::prometheus_metrics m("game_");
    m.on_upgrade(s::upgrade_result::accepted);
    m.on_upgrade(s::upgrade_result::accepted);
    m.on_upgrade(s::upgrade_result::unauthorized);
    m.on_connection_open();
    m.on_connection_open();
    m.on_connection_close(4002);
    m.on_connection_close(3999);
    m.on_connection_open();
    m.on_message_in(40);
    m.on_message_in(60);
    m.on_message_out(16);
    m.on_response(p::response_code::ok);
    m.on_response(p::response_code::service_not_found);
    m.on_response(static_cast<p::response_code>(200));  // unknown codes are still counted

    CHECK(m.open_connections() == 1);
    CHECK(m.upgrades(s::upgrade_result::accepted) == 2);
    CHECK(m.messages_in() == 2);
    const auto all = samples(m.render());
    CHECK(all.at("game_connections") == "1");
    CHECK(all.at("game_connections_opened_total") == "3");
    CHECK(all.at("game_upgrades_total{result=\"accepted\",status=\"101\"}") == "2");
    CHECK(all.at("game_upgrades_total{result=\"unauthorized\",status=\"401\"}") == "1");
    CHECK(all.at("game_received_bytes_total") == "100");
    CHECK(all.at("game_messages_sent_total") == "1");
    CHECK(all.at("game_sent_bytes_total") == "16");
    CHECK(all.at("game_responses_total{code=\"0\",name=\"OK\"}") == "1");
    CHECK(all.at("game_responses_total{code=\"30\",name=\"ServiceNotFound\"}") == "1");
    CHECK(all.at("game_responses_total{code=\"200\",name=\"unknown\"}") == "1");
    CHECK(all.at("game_disconnects_total{code=\"4002\"}") == "1");
    CHECK(all.at("game_disconnects_total{code=\"other\"}") == "1");
}

TEST_CASE("metrics: latency histogram buckets are cumulative, bounds inclusive") {
    s::prometheus_metrics m;
    m.on_handler_latency(50us);    // exactly the first bound: le="5e-05"
    m.on_handler_latency(51us);    // next bucket
    m.on_handler_latency(3ms);     // le="0.005"
    m.on_handler_latency(20s);     // beyond the last bound: +Inf only
    m.on_handler_latency(-5ns);    // clock skew counts as zero
    const auto all = samples(m.render());
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"5e-05\"}") == "2");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"0.0001\"}") == "3");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"0.0025\"}") == "3");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"0.005\"}") == "4");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"10\"}") == "4");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"+Inf\"}") == "5");
    CHECK(all.at("gatehouse_handler_latency_seconds_count") == "5");
    CHECK(std::stod(all.at("gatehouse_handler_latency_seconds_sum")) == doctest::Approx(20.003101));
}

TEST_CASE("metrics: invalid prefixes are refused at construction") {
    CHECK_THROWS_AS(s::prometheus_metrics(""), std::invalid_argument);
    CHECK_THROWS_AS(s::prometheus_metrics("9lives_"), std::invalid_argument);
    CHECK_THROWS_AS(s::prometheus_metrics("game-server_"), std::invalid_argument);
    CHECK_THROWS_AS(s::prometheus_metrics("a b"), std::invalid_argument);
    CHECK_NOTHROW(s::prometheus_metrics("ns:sub_"));
}

TEST_CASE("metrics: concurrent writers and a concurrent scrape lose nothing") {
    s::prometheus_metrics m;
    constexpr int threads = 4, per_thread = 20000;
    std::atomic<bool> done{false};
    std::thread scraper([&] {
        std::string out;
        while (!done.load()) {
            out.clear();
            m.render(out);
        }
    });
    std::vector<std::thread> writers;
    for (int t = 0; t < threads; ++t)
        writers.emplace_back([&] {
            for (int i = 0; i < per_thread; ++i) {
                m.on_message_in(10);
                m.on_response(p::response_code::ok);
                m.on_handler_latency(1ms);
            }
        });
    for (auto& w : writers) w.join();
    done = true;
    scraper.join();
    CHECK(m.messages_in() == threads * per_thread);
    CHECK(m.responses(p::response_code::ok) == threads * per_thread);
    const auto all = samples(m.render());
    CHECK(all.at("gatehouse_received_bytes_total") == std::to_string(10 * threads * per_thread));
    CHECK(all.at("gatehouse_handler_latency_seconds_count") == std::to_string(threads * per_thread));
}

TEST_CASE("metrics: the interface's defaults do nothing and a host may override a part") {
    struct only_closes : s::metrics_sink {
        std::vector<std::uint16_t> codes;
        void on_connection_close(std::uint16_t code) noexcept override { codes.push_back(code); }
    } sink;
    s::metrics_sink& base = sink;
    base.on_upgrade(s::upgrade_result::accepted);
    base.on_message_in(1);
    base.on_connection_close(1001);
    CHECK(sink.codes == std::vector<std::uint16_t>{1001});
    for (std::size_t i = 0; i < s::upgrade_result_count; ++i)
        CHECK_FALSE(s::upgrade_result_name(static_cast<s::upgrade_result>(i)).empty());
}

TEST_CASE("metrics: upgrade results carry their HTTP status; timeouts have none") {
    s::prometheus_metrics m;
    m.on_upgrade(s::upgrade_result::shutting_down);
    m.on_upgrade(s::upgrade_result::handshake_timeout);
    const auto all = samples(m.render());
    CHECK(all.at("gatehouse_upgrades_total{result=\"shutting_down\",status=\"503\"}") == "1");
    CHECK(all.at("gatehouse_upgrades_total{result=\"handshake_timeout\",status=\"none\"}") == "1");
    CHECK(all.at("gatehouse_upgrades_total{result=\"bad_request\",status=\"400\"}") == "0");
    std::size_t results = 0;
    for (const auto& kv : all) results += kv.first.rfind("gatehouse_upgrades_total{", 0) == 0 ? 1 : 0;
    CHECK(results == s::upgrade_result_count);
}

TEST_CASE("metrics: render_exposition appends the gateway's own values with the prefix") {
    s::prometheus_metrics m("edge_");
    m.on_message_in(3);
    const s::scrape_value extra[] = {{"parked_sessions", "gauge", "Sessions waiting.", 4},
                                     {"client_calls_timed_out_total", "counter", "Timed out.", 7}};
    std::string out;
    REQUIRE(m.render_exposition(out, extra, 2));
    CHECK(out.rfind(m.render(), 0) == 0);  // the sink's own families first
    const auto all = samples(out);
    CHECK(all.at("edge_parked_sessions") == "4");
    CHECK(all.at("edge_client_calls_timed_out_total") == "7");
    CHECK(all.at("edge_messages_received_total") == "1");
    CHECK(out.find("# TYPE edge_parked_sessions gauge\n") != std::string::npos);
    CHECK(out.find("# TYPE edge_client_calls_timed_out_total counter\n") != std::string::npos);
}

TEST_CASE("metrics: a sink without an exposition says so") {
    struct counting_sink final : s::metrics_sink {
        void on_connection_open() noexcept override { ++opened; }
        int opened = 0;
    } sink;
    sink.on_connection_open();
    sink.on_message_in(10);  // the defaults do nothing
    std::string out;
    CHECK_FALSE(static_cast<const s::metrics_sink&>(sink).render_exposition(out, nullptr, 0));
    CHECK(out.empty());
    CHECK(sink.opened == 1);
}
