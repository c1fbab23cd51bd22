// The gateway's metrics (issue 5 item 8) on the in-memory transport: every
// event the gateway reports lands in the prometheus_metrics exposition with
// the exact count, and the gateway's own values (sessions, reconnection
// queue, server-to-client requests) follow it in gateway::metrics_exposition.
#include "harness.hpp"
#include "../support/exposition.hpp"

#include <gatehouse/server/metrics.hpp>

#include <map>
#include <regex>
#include <sstream>

using namespace gatehouse::test;
using p::response_code;
using namespace std::chrono_literals;

namespace {

std::map<std::string, std::string> samples(const std::string& text) { return gatehouse::test::exposition_samples(text); }

std::string upgrades_key(s::upgrade_result r) {
    const int status = s::upgrade_result_status(r);
    return "gatehouse_upgrades_total{result=\"" + std::string(s::upgrade_result_name(r)) + "\",status=\"" +
           (status == 0 ? std::string("none") : std::to_string(status)) + "\"}";
}
std::string responses_key(response_code c) {
    return "gatehouse_responses_total{code=\"" + std::to_string(p::to_byte(c)) + "\",name=\"" +
           std::string(p::response_code_name(c)) + "\"}";
}
std::string disconnects_key(const char* code) {
    return "gatehouse_disconnects_total{code=\"" + std::string(code) + "\"}";
}

struct metrics_fixture {
    explicit metrics_fixture(s::gateway_options o = default_options()) : f(with_sink(std::move(o), sink)) {}
    static s::gateway_options with_sink(s::gateway_options o, const std::shared_ptr<s::prometheus_metrics>& m) {
        o.metrics = m;
        return o;
    }
    std::map<std::string, std::string> scrape() {
        std::string text;
        REQUIRE(f.h.gw.metrics_exposition(text));
        return samples(text);
    }
    std::shared_ptr<s::prometheus_metrics> sink = std::make_shared<s::prometheus_metrics>();
    standard_fixture f;
};

/// Frames and bytes a client received.
std::pair<std::size_t, std::size_t> received(const s::memory_client& c) {
    std::size_t bytes = 0;
    const auto frames = c.frames();
    for (const auto& f : frames) bytes += f.bytes.size();
    return {frames.size(), bytes};
}

}  // namespace

TEST_CASE("metrics wiring: refused upgrades are counted by reason, accepted ones once") {
    auto o = default_options();
    o.allowed_origins = {"https://game.example"};
    auto lines = std::make_shared<std::vector<std::string>>();
    auto lines_mutex = std::make_shared<std::mutex>();
    o.log = [lines, lines_mutex](s::log_level, std::string_view line) {
        std::lock_guard<std::mutex> lock(*lines_mutex);
        lines->emplace_back(line);
    };
    metrics_fixture m(o);
    auto& h = m.f.h;

    CHECK(h.upgrade({})->status() == 401);  // no credentials
    CHECK(h.upgrade_with("Bearer bad|x|y")->status() == 401);
    s::memory_upgrade wrong_path;
    wrong_path.resource = "/elsewhere";
    wrong_path.headers.push_back({"Authorization", "Bearer " + token("alice", session_a)});
    CHECK(h.upgrade(wrong_path)->status() == 404);
    s::memory_upgrade foreign;
    foreign.headers.push_back({"Authorization", "Bearer " + token("alice", session_a)});
    foreign.headers.push_back({"Origin", "https://evil.example"});
    CHECK(h.upgrade(foreign)->status() == 403);
    auto alice = h.connect(token("alice", session_a));
    // Accepted, but the socket dies before the 101: never an open connection.
    s::memory_upgrade dying;
    dying.headers.push_back({"Authorization", "Bearer " + token("bob", session_b)});
    dying.fail_before_open = true;
    h.upgrade(dying);
    h.settle();

    const auto all = m.scrape();
    CHECK(all.at(upgrades_key(s::upgrade_result::unauthorized)) == "2");
    CHECK(all.at(upgrades_key(s::upgrade_result::not_found)) == "1");
    CHECK(all.at(upgrades_key(s::upgrade_result::forbidden_origin)) == "1");
    CHECK(all.at(upgrades_key(s::upgrade_result::accepted)) == "2");
    CHECK(all.at(upgrades_key(s::upgrade_result::rate_limited)) == "0");
    CHECK(all.at("gatehouse_connections") == "1");
    CHECK(all.at("gatehouse_connections_opened_total") == "1");
    CHECK(all.at("gatehouse_sessions") == "1");
    CHECK(all.at(disconnects_key("1006")) == "0");  // the one that never opened is not a disconnect
    CHECK(h.gw.stats().upgrades_refused == 4);

    // The exposition never carries credentials or identities.
    std::string text;
    REQUIRE(h.gw.metrics_exposition(text));
    CHECK(text.find("alice") == std::string::npos);
    CHECK(text.find(session_a) == std::string::npos);
    CHECK(text.find("sync|") == std::string::npos);
    // Nor does the log: refused and accepted credentials alike.
    auto bob = h.connect(token("bob", session_b));
    bob->drop();
    h.settle();
    std::lock_guard<std::mutex> lock(*lines_mutex);
    for (const auto& line : *lines) {
        INFO(line);
        CHECK(line.find("bad|x|y") == std::string::npos);
        CHECK(line.find("sync|") == std::string::npos);
    }
}

TEST_CASE("metrics wiring: connect-rate and capacity refusals, and shutting down") {
    auto o = default_options();
    o.connect_burst = 1;
    o.connects_per_second = 0.001;
    metrics_fixture m(o);
    auto& h = m.f.h;
    auto alice = h.connect(token("alice", session_a));
    CHECK(h.upgrade_with("Bearer " + token("bob", session_b))->status() == 429);
    CHECK(m.scrape().at(upgrades_key(s::upgrade_result::rate_limited)) == "1");

    auto o2 = default_options();
    o2.max_connections = 1;
    metrics_fixture capped(o2);
    auto first = capped.f.h.connect(token("alice", session_a));
    CHECK(capped.f.h.upgrade_with("Bearer " + token("bob", session_b))->status() == 503);
    capped.f.h.gw.stop();
    CHECK(capped.f.h.upgrade_with("Bearer " + token("carol", session_b))->status() == 503);
    capped.f.h.run_until([&] { return first->closed(); });
    capped.f.h.settle();
    const auto all = capped.scrape();
    CHECK(all.at(upgrades_key(s::upgrade_result::over_capacity)) == "1");
    CHECK(all.at(upgrades_key(s::upgrade_result::shutting_down)) == "1");
    CHECK(all.at(disconnects_key("1001")) == "1");  // stop() closes with 1001
    CHECK(all.at("gatehouse_connections") == "0");
}

TEST_CASE("metrics wiring: messages, bytes, response codes and handler latency") {
    metrics_fixture m;
    auto& h = m.f.h;
    auto c = h.connect(token("alice", session_a));
    const auto echo = harness::guid_of(*c, "/echo");
    const auto fail = harness::guid_of(*c, "/fail");

    std::size_t sent_messages = 0, sent_bytes = 0;
    const auto call = [&](const std::string& frame, std::uint64_t id) {
        ++sent_messages;
        sent_bytes += frame.size();
        return h.call(*c, frame, id);
    };
    CHECK(call(harness::request(echo, R"({"a":1})", p::message_flags::none, 0, 1, 1), 1).frame.code ==
          response_code::ok);
    CHECK(call(harness::request(echo, R"({"b":2})", p::message_flags::none, 1, 1, 2), 2).frame.code ==
          response_code::ok);
    CHECK(call(harness::request(fail, "{}", p::message_flags::none, 0, 2, 3), 3).frame.code ==
          response_code::backend_not_found);
    CHECK(call(harness::request(p::guid_from_string("0a0b0c0d-0000-4000-8000-000000000001"), "{}",
                                p::message_flags::none, 0, 3, 4),
               4)
              .frame.code == response_code::service_not_found);
    // An Event-flagged request: handled (latency counted), never answered.
    const auto event = harness::request(echo, "{}", p::message_flags::event, 2, 1, 5);
    c->send_binary(p::bytes_view(event));
    ++sent_messages;
    sent_bytes += event.size();
    // A text frame: answered 14 on channel 0.
    c->send_text("hello");
    ++sent_messages;
    sent_bytes += 5;
    h.run_until([&] { return harness::responses(*c).size() == 5; });
    h.settle();

    const auto all = m.scrape();
    CHECK(all.at("gatehouse_messages_received_total") == std::to_string(sent_messages));
    CHECK(all.at("gatehouse_received_bytes_total") == std::to_string(sent_bytes));
    const auto [frames, bytes] = received(*c);
    CHECK(frames == 6);  // manifest + 5 responses
    CHECK(all.at("gatehouse_messages_sent_total") == std::to_string(frames));
    CHECK(all.at("gatehouse_sent_bytes_total") == std::to_string(bytes));
    CHECK(all.at(responses_key(response_code::ok)) == "2");
    CHECK(all.at(responses_key(response_code::backend_not_found)) == "1");
    CHECK(all.at(responses_key(response_code::service_not_found)) == "1");
    CHECK(all.at(responses_key(response_code::text_protocol_not_supported)) == "1");
    CHECK(all.at(responses_key(response_code::too_many_requests)) == "0");
    // Three handled calls and the event: four latencies, all well under 10 s.
    CHECK(all.at("gatehouse_handler_latency_seconds_count") == "4");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"10\"}") == "4");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"+Inf\"}") == "4");
}

TEST_CASE("metrics wiring: a held handler's latency is measured to its answer, a timeout counts too") {
    auto o = default_options();
    o.handler_timeout = 100ms;
    metrics_fixture m(o);
    auto& h = m.f.h;
    auto c = h.connect(token("alice", session_a));
    const auto hold = harness::guid_of(*c, "/hold");
    c->send_binary(p::bytes_view(harness::request(hold, "{}", p::message_flags::none, 0, 1, 1)));
    h.run_until([&] { return m.f.held->size() == 1; });
    h.settle(30ms);
    m.f.held->take(0).reply("{}");
    c->send_binary(p::bytes_view(harness::request(hold, "{}", p::message_flags::none, 1, 1, 2)));
    h.run_until([&] { return harness::responses(*c).size() == 2; });  // the second times out: 60

    const auto all = m.scrape();
    CHECK(all.at("gatehouse_handler_latency_seconds_count") == "2");
    // Both took at least 25 ms (held 30 ms, timed out after 100 ms), both under 1 s.
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"0.025\"}") == "0");
    CHECK(all.at("gatehouse_handler_latency_seconds_bucket{le=\"1\"}") == "2");
    CHECK(std::stod(all.at("gatehouse_handler_latency_seconds_sum")) >= 0.125);
    CHECK(all.at(responses_key(response_code::backend_internal_error)) == "1");
}

TEST_CASE("metrics wiring: disconnects by the code sent or received") {
    metrics_fixture m;
    auto& h = m.f.h;
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    auto c = h.connect(token("carol", "c-key"));
    auto d = h.connect(token("dave", "d-key"));
    CHECK(m.scrape().at("gatehouse_connections") == "4");

    a->close(1000);                                    // the client asks
    b->drop();                                         // the network fails
    CHECK(h.gw.disconnect("no-such-session", 4008, "x") == s::server_errc::session_not_found);
    const auto carol_session = harness::manifest_of(*c)->at("sessionId").get<std::string>();
    REQUIRE_FALSE(h.gw.disconnect(carol_session, 4008, "abuse"));  // the server closes
    h.gw.revoke_session(harness::manifest_of(*d)->at("sessionId").get<std::string>());
    h.run_until([&] { return a->closed() && b->closed() && c->closed() && d->closed(); });
    h.settle();

    const auto all = m.scrape();
    CHECK(all.at(disconnects_key("1000")) == "1");
    CHECK(all.at(disconnects_key("1006")) == "1");
    CHECK(all.at(disconnects_key("4008")) == "1");
    CHECK(all.at(disconnects_key("4002")) == "1");
    CHECK(all.at(disconnects_key("other")) == "0");
    CHECK(all.at("gatehouse_connections") == "0");
    CHECK(all.at("gatehouse_connections_opened_total") == "4");
    CHECK(all.at("gatehouse_sessions") == "0");
}

TEST_CASE("metrics wiring: reconnection queue and server-to-client requests follow the sink's families") {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 64 * 1024;
    metrics_fixture m(o);
    auto& h = m.f.h;
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));

    a->drop();  // parked: its client may come back
    h.run_until([&] { return h.gw.stats().parked_sessions == 1; });
    REQUIRE_FALSE(h.gw.push_to_session(session_a, "game.tick", {{"n", 1}}));
    REQUIRE_FALSE(h.gw.push_to_session(session_a, "game.tick", {{"n", 2}}));

    bool timed_out = false;
    s::client_call_options quick;
    quick.timeout = 10ms;
    REQUIRE_FALSE(h.gw.call_client(session_b, "{}", [&](std::error_code ec, s::client_reply) {
        timed_out = ec == s::server_errc::client_call_timeout;
    }, quick));
    h.run_until([&] { return timed_out; });
    s::client_call_options slow;
    slow.timeout = 60000ms;
    REQUIRE_FALSE(h.gw.call_client(session_b, "{}", nullptr, slow));
    h.run_until([&] { return h.gw.stats().client_calls_pending == 1; });

    auto all = m.scrape();
    CHECK(all.at("gatehouse_parked_sessions") == "1");
    CHECK(all.at("gatehouse_queued_events") == "2");
    CHECK(all.at("gatehouse_sessions_resumed_total") == "0");
    CHECK(all.at("gatehouse_client_calls_pending") == "1");
    CHECK(all.at("gatehouse_client_calls_timed_out_total") == "1");
    CHECK(all.at("gatehouse_responses_unmatched_total") == "0");
    CHECK(all.at("gatehouse_sessions") == std::to_string(h.gw.stats().sessions));
    CHECK(all.at("gatehouse_connections") == "1");

    // Its client comes back: the queue is delivered.
    auto again = h.connect(token("alice", session_a));
    h.run_until([&] { return harness::events(*again).size() == 2; });
    all = m.scrape();
    CHECK(all.at("gatehouse_parked_sessions") == "0");
    CHECK(all.at("gatehouse_queued_events") == "0");
    CHECK(all.at("gatehouse_sessions_resumed_total") == "1");
    CHECK(all.at("gatehouse_queued_events_delivered_total") == "2");
    CHECK(all.at("gatehouse_connections") == "2");
    CHECK(all.at("gatehouse_connections_opened_total") == "3");
}

TEST_CASE("metrics wiring: every row of gateway_stats.hpp is exposed once, with the snapshot's value") {
    metrics_fixture m;
    auto& h = m.f.h;
    auto c = h.connect(token("alice", session_a));
    const auto echo = harness::guid_of(*c, "/echo");
    CHECK(h.call(*c, harness::request(echo, "hi", p::message_flags::none, 0, 1, 1), 1).frame.code ==
          p::response_code::ok);
    const auto stats = h.gw.stats();
    const auto all = m.scrape();
    std::size_t rows = 0;
#define GATEHOUSE_TEST_GAUGE(field, name, help)                  \
    CHECK(all.at("gatehouse_" name) == std::to_string(stats.field)); \
    ++rows;
    GATEHOUSE_GATEWAY_GAUGES(GATEHOUSE_TEST_GAUGE)
#undef GATEHOUSE_TEST_GAUGE
#define GATEHOUSE_TEST_COUNTER(field, exposed, help)                                \
    if (exposed) {                                                                  \
        CHECK(all.at("gatehouse_" #field "_total") == std::to_string(stats.field)); \
        ++rows;                                                                     \
    } else {                                                                        \
        CHECK(all.count("gatehouse_" #field "_total") == 0);                        \
    }
    GATEHOUSE_GATEWAY_COUNTERS(GATEHOUSE_TEST_COUNTER)
#undef GATEHOUSE_TEST_COUNTER
#define GATEHOUSE_TEST_OBSERVER_COUNTER(field, accessor, help)                  \
    CHECK(all.at("gatehouse_" #field "_total") == std::to_string(stats.field)); \
    ++rows;
    GATEHOUSE_GATEWAY_OBSERVER_COUNTERS(GATEHOUSE_TEST_OBSERVER_COUNTER)
#undef GATEHOUSE_TEST_OBSERVER_COUNTER
    CHECK(rows >= 25);
    CHECK(all.at("gatehouse_sessions") == "1");
    CHECK(stats.upgrades_accepted == 1);
}

TEST_CASE("metrics wiring: without a sink nothing is rendered; options are validated") {
    standard_fixture plain;
    auto c = plain.h.connect(token("alice", session_a));
    std::string out = "kept";
    CHECK_FALSE(plain.h.gw.metrics_exposition(out));
    CHECK(out == "kept");

    // A sink without an exposition: counted by the host, nothing to render.
    struct opens_only final : s::metrics_sink {
        void on_connection_open() noexcept override { opened.fetch_add(1); }
        std::atomic<int> opened{0};
    };
    auto sink = std::make_shared<opens_only>();
    auto o = default_options();
    o.metrics = sink;
    standard_fixture custom(o);
    auto d = custom.h.connect(token("alice", session_a));
    CHECK(sink->opened.load() == 1);
    CHECK_FALSE(custom.h.gw.metrics_exposition(out));

    const auto invalid = [](auto change) {
        auto bad = default_options();
        change(bad);
        return bad;
    };
    const auto make = [](s::gateway_options bad) {
        s::gateway gw(std::move(bad), std::make_shared<scripted_validator>(),
                      std::make_shared<session::memory_session_store>());
    };
    CHECK_THROWS_WITH_AS(make(invalid([](auto& b) { b.metrics_path = "metrics"; })),
                         doctest::Contains("metrics_path must start with '/'"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(make(invalid([](auto& b) { b.health_path = "/health?x"; })),
                         doctest::Contains("health_path must not contain a query"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(make(invalid([](auto& b) { b.health_path = "/connect/health"; })),
                         doctest::Contains("health_path must not overlap the WebSocket path"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(make(invalid([](auto& b) { b.metrics_path = "/"; })),
                         doctest::Contains("metrics_path must not overlap the WebSocket path"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(make(invalid([](auto& b) { b.health_path = "/metrics"; })),
                         doctest::Contains("metrics_path and health_path must differ"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(make(invalid([](auto& b) { b.metrics_allowed_addresses = {""}; })),
                         doctest::Contains("metrics_allowed_addresses must not contain an empty address"),
                         std::invalid_argument);
    // Empty paths disable the endpoints.
    CHECK_NOTHROW(make(invalid([](auto& b) {
        b.metrics_path.clear();
        b.health_path.clear();
    })));
}
