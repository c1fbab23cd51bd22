// The dispatcher alone (gatehouse/server/detail/dispatcher.hpp): no gateway,
// no store, no transport. A recording host stands for the connection; the
// tests drive frames in and read the responses the dispatcher sends: the
// §8.2 checks in their order, channels and the in-flight and queue limits,
// handler timeouts, answers from other threads, and the end of a connection.
#include <gatehouse/server/detail/dispatcher.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace d = gatehouse::server::detail;
namespace protocol = gatehouse::protocol;
namespace routing = gatehouse::routing;
using protocol::message_flags;
using protocol::response_code;

namespace {

routing::endpoint_options endpoint(std::string path) {
    routing::endpoint_options o;
    o.service = "game";
    o.path = std::move(path);
    return o;
}

/// The connection, as far as the dispatcher sees it: records what it sends,
/// closes and hands back; runs posted answers when the test says so.
struct recording_host final : d::dispatch_host, std::enable_shared_from_this<recording_host> {
    explicit recording_host(gatehouse::server::gateway_options o) : options(std::move(o)) {}

    gatehouse::server::gateway_options options;
    std::atomic<std::uint64_t> dropped{0}, unmatched{0}, account_limited{0};
    d::dispatch_context context{options, nullptr, dropped, unmatched, account_limited};
    d::dispatcher dispatch{*this, context};

    std::vector<std::string> sent;
    std::vector<std::uint16_t> closes;
    int responses_seen = 0;
    bool responses_match = false;
    int peer_frames = 0;
    int deadline_changes = 0;
    int weak_hosts = 0;
    std::mutex posted_mutex;
    std::vector<std::function<void()>> posted;

    void send_response(protocol::bytes_view frame, response_code) override { sent.emplace_back(frame.as_chars()); }
    void close_with(std::uint16_t code, std::string_view) override {
        closes.push_back(code);
        dispatch.closing();
    }
    bool client_response(const protocol::frame_view&) override {
        ++responses_seen;
        return responses_match;
    }
    void peer_frame(const protocol::frame_view&, protocol::bytes_view) override { ++peer_frames; }
    void deadline_changed() override { ++deadline_changes; }
    void post_answer(std::shared_ptr<d::pending_call> call, response_code code, bool binary,
                     std::string payload) override {
        std::lock_guard<std::mutex> lock(posted_mutex);
        posted.push_back([this, call = std::move(call), code, binary, payload = std::move(payload)] {
            dispatch.deliver(*call, code, binary, protocol::bytes_view(payload));
        });
    }
    std::weak_ptr<d::dispatch_host> weak_host() noexcept override {
        ++weak_hosts;
        return weak_from_this();
    }

    /// Runs the answers posted so far, as the connection's executor would.
    void run_posted() {
        std::vector<std::function<void()>> now;
        {
            std::lock_guard<std::mutex> lock(posted_mutex);
            now.swap(posted);
        }
        for (auto& fn : now) fn();
    }
};

/// A registry with a few endpoints, a host with its dispatcher open on them.
struct fixture {
    routing::endpoint_registry registry;
    std::shared_ptr<recording_host> host;
    /// Responders kept by the "hold" endpoint, in arrival order.
    std::vector<routing::responder> held;
    std::vector<std::string> calls;  ///< "<channel>:<payload>" as handlers saw them

    explicit fixture(gatehouse::server::gateway_options o = {}) {
        registry.add(endpoint("/echo"), [this](const routing::request& r, routing::responder out) {
            calls.push_back(std::to_string(r.channel) + ":" + std::string(r.payload.as_chars()));
            out.reply(r.payload.as_chars());
        });
        registry.add(endpoint("/hold"), [this](const routing::request& r, routing::responder out) {
            calls.push_back(std::to_string(r.channel) + ":" + std::string(r.payload.as_chars()));
            held.push_back(std::move(out));
        });
        registry.add(endpoint("/throw"), [](const routing::request&, routing::responder) {
            throw std::runtime_error("handler failed");
        });
        registry.add(endpoint("/binary"), [](const routing::request&, routing::responder out) {
            const std::uint8_t bytes[] = {1, 2, 3};
            out.reply_binary(protocol::bytes_view(bytes, sizeof bytes));
        });
        host = std::make_shared<recording_host>(std::move(o));
        host->dispatch.routes().rebuild(registry, "0b9a2b7c-1d3e-4f50-8a61-72b8c9d0e1f2", host->options.guid_salt,
                                        host->options.guid_order, {}, {});
        auto info = std::make_shared<routing::session_info>();
        info->session_id = "0b9a2b7c-1d3e-4f50-8a61-72b8c9d0e1f2";
        host->dispatch.set_session(std::move(info));
        host->dispatch.open();
    }

    protocol::guid guid_of(std::string_view path) const {
        for (const auto& e : host->dispatch.routes().entries())
            if (e.target->options.path == path) return e.id;
        FAIL("no route for " << path);
        return {};
    }
    /// Sends one binary request frame.
    void send(std::string_view path, std::string_view payload, std::uint16_t channel = 1, std::uint64_t id = 7,
              message_flags flags = message_flags::none) {
        send_to(path.empty() ? protocol::guid{} : guid_of(path), payload, channel, id, flags);
    }
    void send_to(const protocol::guid& service, std::string_view payload, std::uint16_t channel = 1,
                 std::uint64_t id = 7, message_flags flags = message_flags::none) {
        protocol::request_header h;
        h.flags = flags;
        h.channel = channel;
        h.sequence = 3;
        h.service = service;
        h.message_id = id;
        std::string frame;
        protocol::append_frame(frame, h, protocol::bytes_view(payload));
        host->dispatch.on_frame(false, protocol::bytes_view(frame));
    }
    /// The responses sent so far, decoded.
    std::vector<protocol::frame_view> responses() const {
        std::vector<protocol::frame_view> out;
        for (const auto& bytes : host->sent) {
            protocol::frame_view f;
            REQUIRE_FALSE(protocol::decode_frame(protocol::bytes_view(bytes), f));
            REQUIRE(f.is_response());
            out.push_back(f);
        }
        return out;
    }
    response_code last_code() const {
        REQUIRE_FALSE(host->sent.empty());
        return responses().back().code;
    }
};

}  // namespace

TEST_CASE("dispatcher: a request is answered on its channel with its ids, inline, without a timer") {
    fixture f;
    f.send("/echo", "{\"x\":1}", 5, 99);
    const auto r = f.responses();
    REQUIRE(r.size() == 1);
    CHECK(r[0].code == response_code::ok);
    CHECK(r[0].channel == 5);
    CHECK(r[0].sequence == 3);
    CHECK(r[0].message_id == 99);
    CHECK_FALSE(r[0].has(message_flags::binary));
    CHECK(std::string(r[0].payload.as_chars()) == "{\"x\":1}");
    CHECK(f.host->deadline_changes == 0);
    CHECK(f.host->dispatch.in_flight() == 0);
    CHECK(f.host->dispatch.next_deadline() == d::steady::time_point{});

    f.send("/binary", "{}");
    CHECK(f.responses().back().has(message_flags::binary));
}

TEST_CASE("dispatcher: answered inline, the call object is reused for the next request") {
    fixture f;
    for (int i = 0; i < 100; ++i) f.send("/echo", "{}", 1, static_cast<std::uint64_t>(i + 1));
    CHECK(f.host->sent.size() == 100);
    CHECK(f.host->weak_hosts == 1);  // one pending_call made, 99 reused
}

TEST_CASE("dispatcher: the checks of §8.2, each with its code") {
    gatehouse::server::gateway_options o;
    o.max_payload_size = 100;
    o.max_message_size = 1000;
    o.max_channel = 10;
    fixture f(o);

    SUBCASE("a text frame: 14 on channel 0, the server's own sequence") {
        f.host->dispatch.on_frame(true, protocol::bytes_view(std::string_view("hello")));
        f.host->dispatch.on_frame(true, protocol::bytes_view(std::string_view("again")));
        const auto r = f.responses();
        REQUIRE(r.size() == 2);
        CHECK(r[0].code == response_code::text_protocol_not_supported);
        CHECK(r[0].channel == 0);
        CHECK(r[0].sequence == 1);
        CHECK(r[1].sequence == 2);
        CHECK(r[0].message_id != r[1].message_id);
    }
    SUBCASE("a frame beyond max_message_size closes with 1009") {
        f.send("/echo", std::string(1000, 'x'));
        CHECK(f.host->closes == std::vector<std::uint16_t>{1009});
        CHECK(f.host->sent.empty());
        // Closing: later frames are ignored.
        f.send("/echo", "{}");
        CHECK(f.host->sent.empty());
    }
    SUBCASE("no readable header: dropped and counted, nothing sent") {
        const std::string junk(5, '\0');
        f.host->dispatch.on_frame(false, protocol::bytes_view(junk));
        CHECK(f.host->dropped == 1);
        CHECK(f.host->sent.empty());
    }
    SUBCASE("a response goes to the host; one that matches nothing is counted") {
        protocol::response_header h;
        h.flags = message_flags::response;
        h.message_id = 42;
        std::string frame;
        protocol::append_frame(frame, h);
        f.host->dispatch.on_frame(false, protocol::bytes_view(frame));
        CHECK(f.host->responses_seen == 1);
        CHECK(f.host->unmatched == 1);
        f.host->responses_match = true;
        f.host->dispatch.on_frame(false, protocol::bytes_view(frame));
        CHECK(f.host->responses_seen == 2);
        CHECK(f.host->unmatched == 1);
        CHECK(f.host->sent.empty());
    }
    SUBCASE("a payload beyond max_payload_size: 11, the connection stays") {
        f.send("/echo", std::string(101, 'x'));
        CHECK(f.last_code() == response_code::request_too_large);
        CHECK(f.host->closes.empty());
        f.send("/echo", std::string(100, 'x'));
        CHECK(f.last_code() == response_code::ok);
    }
    SUBCASE("an empty payload without Event or Meta: 10; with Event it is routed") {
        f.send("/echo", "");
        CHECK(f.last_code() == response_code::request_error);
        CHECK(f.calls.empty());
        f.send("/echo", "", 1, 8, message_flags::event);
        CHECK(f.calls.size() == 1);
        CHECK(f.host->sent.size() == 1);  // Event-flagged: no answer
    }
    SUBCASE("the broadcast GUID without Client: 10") {
        f.send_to(protocol::guid::broadcast(), "{}");
        CHECK(f.last_code() == response_code::request_error);
    }
    SUBCASE("Client-flagged: 40 without peer routing") {
        f.send_to(protocol::guid::broadcast(), "{}", 1, 7, message_flags::client);
        CHECK(f.last_code() == response_code::broadcast_not_allowed);
        CHECK(f.host->peer_frames == 0);
    }
    SUBCASE("a GUID this session was not given: 30") {
        protocol::guid other;
        other.bytes[0] = 1;
        f.send_to(other, "{}");
        CHECK(f.last_code() == response_code::service_not_found);
    }
    SUBCASE("a channel beyond max_channel: 13") {
        f.send("/echo", "{}", 11);
        CHECK(f.last_code() == response_code::invalid_request_channel);
        f.send("/echo", "{}", 10);
        CHECK(f.last_code() == response_code::ok);
    }
    SUBCASE("Meta: answered from the registration, Meta flag set, handler not called") {
        f.send("/echo", "", 0, 9, message_flags::meta);
        const auto r = f.responses();
        REQUIRE(r.size() == 1);
        CHECK(r[0].code == response_code::ok);
        CHECK(r[0].has(message_flags::meta));
        CHECK(r[0].message_id == 9);
        CHECK(r[0].payload.size() > 2);
        CHECK(r[0].payload.as_chars().front() == '{');
        CHECK(f.calls.empty());
    }
}

TEST_CASE("dispatcher: Client-flagged frames go to the host with peer routing, rate limited first") {
    gatehouse::server::gateway_options o;
    o.peer_routing = true;
    o.message_burst = 2;
    o.messages_per_minute = 1;
    fixture f(o);
    f.send_to(protocol::guid::broadcast(), "{}", 1, 1, message_flags::client);
    f.send_to(protocol::guid::broadcast(), "{}", 1, 2, message_flags::client);
    CHECK(f.host->peer_frames == 2);
    CHECK(f.host->sent.empty());
    f.send_to(protocol::guid::broadcast(), "{}", 1, 3, message_flags::client);
    CHECK(f.host->peer_frames == 2);
    CHECK(f.last_code() == response_code::too_many_requests);
}

TEST_CASE("dispatcher: before open(), every request is 30 and no handler runs") {
    routing::endpoint_registry registry;
    int called = 0;
    registry.add(endpoint("/echo"), [&](const routing::request&, routing::responder out) {
        ++called;
        out.reply("{}");
    });
    auto host = std::make_shared<recording_host>(gatehouse::server::gateway_options{});
    host->dispatch.routes().rebuild(registry, "s", "", host->options.guid_order, {}, {});
    REQUIRE(host->dispatch.routes().entries().size() == 1);
    protocol::request_header h;
    h.channel = 1;
    h.service = host->dispatch.routes().entries()[0].id;
    h.message_id = 5;
    std::string frame;
    protocol::append_frame(frame, h, protocol::bytes_view(std::string_view("{}")));
    host->dispatch.on_frame(false, protocol::bytes_view(frame));
    REQUIRE(host->sent.size() == 1);
    protocol::frame_view r;
    REQUIRE_FALSE(protocol::decode_frame(protocol::bytes_view(host->sent[0]), r));
    CHECK(r.code == response_code::service_not_found);
    CHECK(called == 0);
    CHECK_FALSE(host->dispatch.is_open());
}

TEST_CASE("dispatcher: the message rate limit answers 12; Meta is not counted") {
    gatehouse::server::gateway_options o;
    o.message_burst = 3;
    o.messages_per_minute = 1;
    fixture f(o);
    for (int i = 0; i < 3; ++i) f.send("/echo", "{}");
    CHECK(f.last_code() == response_code::ok);
    f.send("/echo", "", 0, 9, message_flags::meta);
    CHECK(f.last_code() == response_code::ok);
    f.send("/echo", "{}");
    CHECK(f.last_code() == response_code::too_many_requests);
    CHECK(f.calls.size() == 3);
}

TEST_CASE("dispatcher: an account bucket shared with another session limits both; alone it is not consulted") {
    gatehouse::server::gateway_options o;
    o.message_burst = 100;
    o.messages_per_minute = 1;
    o.account_message_burst = 2;
    o.account_messages_per_minute = 1;
    fixture f(o);
    const auto registry_reference = std::make_shared<d::account_bucket>();  // the registry's own
    f.host->dispatch.share_account_bucket(registry_reference);
    // Alone (the registry's reference and this connection's): not consulted.
    for (int i = 0; i < 5; ++i) f.send("/echo", "{}");
    CHECK(f.last_code() == response_code::ok);
    CHECK(f.host->account_limited == 0);
    // A second session holds it too: it limits.
    [[maybe_unused]] const auto second_session = registry_reference;
    f.send("/echo", "{}");
    f.send("/echo", "{}");
    CHECK(f.last_code() == response_code::ok);
    f.send("/echo", "{}");
    CHECK(f.last_code() == response_code::too_many_requests);
    CHECK(f.host->account_limited == 1);
}

TEST_CASE("dispatcher: one request at a time per channel, in order; other channels run alongside") {
    fixture f;
    f.send("/hold", "a", 1, 1);
    f.send("/hold", "b", 1, 2);
    f.send("/hold", "c", 2, 3);
    // Channel 1's second request waits for its first; channel 2 runs.
    CHECK(f.calls == std::vector<std::string>{"1:a", "2:c"});
    CHECK(f.host->dispatch.in_flight() == 2);
    CHECK(f.host->dispatch.queued() == 1);
    REQUIRE(f.held.size() == 2);
    f.held[0].reply("{}");  // a: answered outside the handler call, so posted to the host
    f.host->run_posted();
    CHECK(f.calls == std::vector<std::string>{"1:a", "2:c", "1:b"});
    CHECK(f.host->dispatch.queued() == 0);
    const auto r = f.responses();
    REQUIRE(r.size() == 1);
    CHECK(r[0].message_id == 1);
}

TEST_CASE("dispatcher: max_in_flight across channels, then max_queued_requests, then 12") {
    gatehouse::server::gateway_options o;
    o.max_in_flight = 2;
    o.max_queued_requests = 2;
    fixture f(o);
    f.send("/hold", "1", 1, 1);
    f.send("/hold", "2", 2, 2);
    f.send("/hold", "3", 3, 3);  // queued: two in flight
    f.send("/hold", "4", 4, 4);  // queued
    CHECK(f.host->dispatch.in_flight() == 2);
    CHECK(f.host->dispatch.queued() == 2);
    CHECK(f.host->sent.empty());
    f.send("/hold", "5", 5, 5);  // the queue is full
    CHECK(f.last_code() == response_code::too_many_requests);
    CHECK(f.responses().back().message_id == 5);
    CHECK(f.calls.size() == 2);
    // One answer starts the oldest waiting request.
    f.held[1].reply("{}");
    f.host->run_posted();
    CHECK(f.calls.back() == "3:3");
    CHECK(f.host->dispatch.in_flight() == 2);
    CHECK(f.host->dispatch.queued() == 1);
}

TEST_CASE("dispatcher: a handler that does not answer in time gets 60; its late answer is refused") {
    gatehouse::server::gateway_options o;
    o.handler_timeout = std::chrono::milliseconds(1000);
    fixture f(o);
    const auto before = d::steady::now();
    f.send("/hold", "x", 1, 11);
    CHECK(f.host->deadline_changes == 1);
    const auto due = f.host->dispatch.next_deadline();
    CHECK(due >= before + std::chrono::milliseconds(1000));
    f.host->dispatch.sweep(due - std::chrono::milliseconds(1));
    CHECK(f.host->sent.empty());
    f.host->dispatch.sweep(due);
    CHECK(f.last_code() == response_code::backend_internal_error);
    CHECK(f.responses().back().message_id == 11);
    CHECK(f.host->dispatch.in_flight() == 0);
    REQUIRE(f.held.size() == 1);
    CHECK_FALSE(f.held[0].reply("{}"));
    f.host->run_posted();
    CHECK(f.host->sent.size() == 1);
    // The channel is free again.
    f.send("/echo", "{}", 1, 12);
    CHECK(f.last_code() == response_code::ok);
}

TEST_CASE("dispatcher: an answer from another thread goes through the host's executor") {
    fixture f;
    f.send("/hold", "x", 1, 21);
    REQUIRE(f.held.size() == 1);
    std::thread other([&] { CHECK(f.held[0].reply("{\"done\":true}")); });
    other.join();
    CHECK(f.host->sent.empty());  // not sent from the other thread
    f.host->run_posted();
    REQUIRE(f.host->sent.size() == 1);
    CHECK(f.responses()[0].message_id == 21);
    CHECK(std::string(f.responses()[0].payload.as_chars()) == "{\"done\":true}");
}

TEST_CASE("dispatcher: a handler that throws is answered 60; one that drops its responder too") {
    fixture f;
    f.send("/throw", "{}", 1, 31);
    CHECK(f.last_code() == response_code::backend_internal_error);
    f.send("/hold", "x", 2, 32);
    REQUIRE(f.held.size() == 1);
    f.held.clear();  // abandoned
    f.host->run_posted();
    CHECK(f.last_code() == response_code::backend_internal_error);
    CHECK(f.responses().back().message_id == 32);
}

TEST_CASE("dispatcher: Event-flagged requests get no answer but free their channel") {
    fixture f;
    f.send("/echo", "{}", 1, 41, message_flags::event);
    f.send("/echo", "{}", 1, 42, message_flags::event);
    CHECK(f.calls.size() == 2);
    CHECK(f.host->sent.empty());
    CHECK(f.host->dispatch.in_flight() == 0);
}

TEST_CASE("dispatcher: once closing, no request starts; once stopped, answers are dropped") {
    gatehouse::server::gateway_options o;
    o.max_in_flight = 1;
    fixture f(o);
    f.send("/hold", "1", 1, 1);
    f.send("/hold", "2", 2, 2);  // waits
    f.host->dispatch.closing();
    f.send("/hold", "3", 3, 3);  // ignored
    CHECK(f.calls.size() == 1);
    f.held[0].reply("{}");
    f.host->run_posted();
    // The answer still goes out; the waiting request does not start.
    CHECK(f.host->sent.size() == 1);
    CHECK(f.calls.size() == 1);

    fixture g;
    g.send("/hold", "1", 1, 1);
    g.host->dispatch.stop();
    CHECK(g.host->dispatch.in_flight() == 0);
    CHECK(g.host->dispatch.next_deadline() == d::steady::time_point{});
    g.held[0].reply("{}");
    g.host->run_posted();
    CHECK(g.host->sent.empty());
}

TEST_CASE("dispatcher: an answer for a host that is gone is refused, not delivered") {
    fixture f;
    f.send("/hold", "1", 1, 1);
    REQUIRE(f.held.size() == 1);
    f.host.reset();  // the connection is gone (nobody else holds it)
    CHECK_FALSE(f.held[0].reply("{}"));
}
