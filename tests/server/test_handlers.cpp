// The handler API: responders answer exactly once, dropped responders and
// timeouts answer 60, exceptions answer 60, per-channel order and
// round-robin fairness, bounded queues, routers (§18).
#include "harness.hpp"

using namespace gatehouse::test;
using p::message_flags;
using p::response_code;

namespace {
using fixture = standard_fixture;

std::string numbered(p::guid id, std::uint16_t channel, std::uint64_t n) {
    return harness::request(id, "call-" + std::to_string(n), message_flags::none, channel, static_cast<std::uint32_t>(n), n);
}
}  // namespace

TEST_CASE("responder: exactly once; later answers return false and send nothing") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    c->send_binary(p::bytes_view(numbered(harness::guid_of(*c, "/hold"), 0, 1)));
    f.h.run_until([&] { return f.held->size() == 1; });
    auto answer = f.held->take(0);
    CHECK(answer.pending());
    CHECK(answer.reply(R"({"n":1})"));
    CHECK_FALSE(answer.pending());
    CHECK_FALSE(answer.reply("{}"));
    CHECK_FALSE(answer.fail(response_code::backend_conflict));
    f.h.settle();
    const auto replies = harness::responses(*c);
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].frame.code == response_code::ok);
    CHECK(replies[0].frame.payload.as_chars() == R"({"n":1})");
}

TEST_CASE("responder: failures carry their code and no payload; reply_http maps statuses") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    CHECK(f.h.call(*c, harness::request(harness::guid_of(*c, "/fail"), "{}")).frame.code ==
          response_code::backend_not_found);
    const auto hold = harness::guid_of(*c, "/hold");
    const std::pair<int, response_code> cases[] = {{200, response_code::ok},
                                                   {204, response_code::ok},
                                                   {400, response_code::backend_bad_request},
                                                   {401, response_code::backend_unauthorized},
                                                   {403, response_code::backend_unauthorized},
                                                   {404, response_code::backend_not_found},
                                                   {409, response_code::backend_conflict},
                                                   {429, response_code::backend_internal_error},
                                                   {503, response_code::backend_internal_error}};
    std::uint64_t n = 100;
    for (const auto& [status, code] : cases) {
        ++n;
        c->send_binary(p::bytes_view(numbered(hold, 0, n)));
        f.h.run_until([&] { return f.held->size() == n - 100; });
        f.held->take(n - 101).reply_http(status, R"({"body":true})");
        f.h.run_until([&] { return harness::responses(*c).size() == n - 100 + 1; });
        const auto reply = harness::responses(*c).back();
        CHECK(reply.frame.message_id == n);
        CHECK(reply.frame.code == code);
        CHECK(reply.frame.payload.size() == (code == response_code::ok ? 13u : 0u));
    }
    // fail(ok) is not a success.
    ++n;
    c->send_binary(p::bytes_view(numbered(hold, 0, n)));
    f.h.run_until([&] { return f.held->size() == n - 100; });
    f.held->take(n - 101).fail(response_code::ok);
    f.h.run_until([&] { return harness::responses(*c).back().frame.message_id == n; });
    CHECK(harness::responses(*c).back().frame.code == response_code::backend_internal_error);
}

TEST_CASE("responder: dropped without an answer -> 60; handler exception -> 60") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    CHECK(f.h.call(*c, harness::request(harness::guid_of(*c, "/drop"), "{}")).frame.code ==
          response_code::backend_internal_error);
    CHECK(f.h.call(*c, harness::request(harness::guid_of(*c, "/throw"), "{}")).frame.code ==
          response_code::backend_internal_error);
    // A held responder destroyed later (from this thread) also answers 60.
    c->send_binary(p::bytes_view(numbered(harness::guid_of(*c, "/hold"), 0, 7)));
    f.h.run_until([&] { return f.held->size() == 1; });
    { auto dropped = f.held->take(0); }
    f.h.run_until([&] { return harness::responses(*c).size() == 3; });
    CHECK(harness::responses(*c).back().frame.code == response_code::backend_internal_error);
    CHECK(harness::responses(*c).back().frame.message_id == 7);
}

TEST_CASE("handler timeout -> 60; the late answer is refused") {
    auto o = default_options();
    o.handler_timeout = std::chrono::milliseconds(60);
    fixture f(o);
    auto c = f.h.connect(token("alice", session_a));
    const auto sent = std::chrono::steady_clock::now();
    c->send_binary(p::bytes_view(numbered(harness::guid_of(*c, "/hold"), 0, 9)));
    f.h.run_until([&] { return harness::responses(*c).size() == 1; });
    CHECK(std::chrono::steady_clock::now() - sent >= std::chrono::milliseconds(55));
    CHECK(harness::responses(*c)[0].frame.code == response_code::backend_internal_error);
    CHECK(harness::responses(*c)[0].frame.message_id == 9);
    CHECK_FALSE(f.held->take(0).reply("{}"));
    // The channel is free again.
    CHECK(f.h.call(*c, harness::request(harness::guid_of(*c, "/echo"), "{}")).frame.code == response_code::ok);
}

TEST_CASE("channels: one request in flight per channel, arrival order; other channels proceed") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    const auto hold = harness::guid_of(*c, "/hold");
    c->send_binary(p::bytes_view(numbered(hold, 1, 1)));
    c->send_binary(p::bytes_view(numbered(hold, 1, 2)));
    c->send_binary(p::bytes_view(numbered(hold, 2, 3)));
    f.h.settle();
    // Call 2 waits behind call 1 on channel 1; call 3 runs on channel 2.
    REQUIRE(f.held->size() == 2);
    CHECK(f.held->order == std::vector<std::string>{"call-1", "call-3"});
    f.held->take(1).reply("{}");  // channel 2 finishing does not release channel 1
    f.h.settle();
    CHECK(f.held->size() == 2);
    f.held->take(0).reply("{}");
    f.h.run_until([&] { return f.held->size() == 3; });
    CHECK(f.held->order.back() == "call-2");
    f.held->take(2).reply("{}");
    f.h.run_until([&] { return harness::responses(*c).size() == 3; });
    std::vector<std::uint64_t> ids;
    for (const auto& m : harness::responses(*c)) ids.push_back(m.frame.message_id);
    CHECK(ids == std::vector<std::uint64_t>{3, 1, 2});
}

TEST_CASE("channels: round-robin across channels under the in-flight bound") {
    auto o = default_options();
    o.max_in_flight = 1;
    fixture f(o);
    auto c = f.h.connect(token("alice", session_a));
    const auto hold = harness::guid_of(*c, "/hold");
    // Channel 1 gets three requests, channels 2 and 3 one each; with one
    // request in flight at a time they are served 1, 2, 3, 1, 1.
    std::uint64_t n = 0;
    for (std::uint16_t ch : {1, 1, 1, 2, 3}) c->send_binary(p::bytes_view(numbered(hold, ch, ++n)));
    f.h.settle();
    for (std::size_t i = 0; i < 5; ++i) {
        f.h.run_until([&] { return f.held->size() == i + 1; });
        f.h.settle(std::chrono::milliseconds(5));
        CHECK(f.held->size() == i + 1);  // never more than one in flight
        f.held->take(i).reply("{}");
    }
    CHECK(f.held->order == std::vector<std::string>{"call-1", "call-4", "call-5", "call-2", "call-3"});
}

TEST_CASE("channels: waiting requests are bounded -> 12") {
    auto o = default_options();
    o.max_in_flight = 1;
    o.max_queued_requests = 2;
    fixture f(o);
    auto c = f.h.connect(token("alice", session_a));
    const auto hold = harness::guid_of(*c, "/hold");
    for (std::uint64_t n = 1; n <= 4; ++n) c->send_binary(p::bytes_view(numbered(hold, 0, n)));
    f.h.run_until([&] { return harness::responses(*c).size() == 1; });
    CHECK(harness::responses(*c)[0].frame.message_id == 4);
    CHECK(harness::responses(*c)[0].frame.code == response_code::too_many_requests);
    for (std::size_t i = 0; i < 3; ++i) {
        f.h.run_until([&] { return f.held->size() == i + 1; });
        f.held->take(i).reply("{}");
    }
    f.h.run_until([&] { return harness::responses(*c).size() == 4; });
}

TEST_CASE("responder completed from another thread is posted back to the connection") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    c->send_binary(p::bytes_view(numbered(harness::guid_of(*c, "/hold"), 0, 5)));
    f.h.run_until([&] { return f.held->size() == 1; });
    auto answer = f.held->take(0);
    bool accepted = false;
    std::thread([&] { accepted = answer.reply(R"({"from":"thread"})"); }).join();
    CHECK(accepted);
    f.h.run_until([&] { return harness::responses(*c).size() == 1; });
    CHECK(harness::responses(*c)[0].frame.payload.as_chars() == R"({"from":"thread"})");
}

TEST_CASE("a responder outliving its connection does nothing") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    c->send_binary(p::bytes_view(numbered(harness::guid_of(*c, "/hold"), 0, 5)));
    f.h.run_until([&] { return f.held->size() == 1; });
    c->close();
    f.h.run_until([&] { return c->closed(); });
    f.h.settle();
    auto answer = f.held->take(0);
    answer.reply("{}");  // no crash, nothing sent
    f.h.settle();
    CHECK(harness::responses(*c).empty());
}

namespace {
class recording_router final : public r::router {
public:
    void async_route(const r::request& req, r::responder answer) override {
        paths.push_back(req.target->options.path);
        sessions.push_back(req.session->session_id);
        answer.reply_http(req.target->options.path == "/inventory/missing" ? 404 : 200, R"({"routed":true})");
    }
    std::vector<std::string> paths;
    std::vector<std::string> sessions;
};
}  // namespace

TEST_CASE("router: a whole service forwarded through one interface") {
    harness h;
    auto router = std::make_shared<recording_router>();
    h.gw.add_routed_service({ep("inventory", "/inventory/list"), ep("inventory", "/inventory/missing")}, router);
    auto c = h.connect(token("alice", session_a));
    auto reply = h.call(*c, harness::request(harness::guid_of(*c, "/inventory/list"), "{}"));
    CHECK(reply.frame.code == response_code::ok);
    CHECK(reply.frame.payload.as_chars() == R"({"routed":true})");
    reply = h.call(*c, harness::request(harness::guid_of(*c, "/inventory/missing"), "{}"));
    CHECK(reply.frame.code == response_code::backend_not_found);
    CHECK(router->paths == std::vector<std::string>{"/inventory/list", "/inventory/missing"});
    CHECK(router->sessions == std::vector<std::string>{session_a, session_a});
}

TEST_CASE("handler sees session, identity, channel, flags and payload") {
    harness h;
    r::request seen;
    std::shared_ptr<const r::session_info> session;
    std::string payload;
    h.gw.add_endpoint(ep("me", "/me"), [&](const r::request& req, r::responder answer) {
        seen = req;
        session = req.session;
        payload = std::string(req.payload.as_chars());
        answer.reply("{}");
    });
    auto c = h.connect(token("alice", session_a, "p1,p2", "player"));
    h.call(*c, harness::request(harness::guid_of(*c, "/me"), "abc", message_flags::binary, 3, 44, 55), 55);
    REQUIRE(session);
    CHECK(session->session_id == session_a);
    CHECK(session->account_id == "alice");
    CHECK(session->identity.subject == "alice");
    CHECK(session->identity.permissions == std::vector<std::string>{"p1", "p2"});
    CHECK(session->identity.roles == std::vector<std::string>{"player"});
    CHECK(session->remote_address == "127.0.0.1");
    CHECK(session->connection_id > 0);
    CHECK(seen.channel == 3);
    CHECK(seen.sequence == 44);
    CHECK(seen.message_id == 55);
    CHECK(seen.flags == message_flags::binary);
    CHECK(seen.target->options.path == "/me");
    CHECK(payload == "abc");
}

TEST_CASE("endpoint registration: invalid options are refused with a clear message") {
    harness h;
    const auto noop = [](const r::request&, r::responder) {};
    CHECK_THROWS_WITH_AS(h.gw.add_endpoint(ep("", "/x"), noop), doctest::Contains("service name is empty"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(h.gw.add_endpoint(ep("a:b", "/x"), noop), doctest::Contains("contains ':'"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(h.gw.add_endpoint(ep("a", "x"), noop), doctest::Contains("must start with '/'"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(h.gw.add_endpoint(ep("a", "/x/{id}"), noop), doctest::Contains("templated"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(h.gw.add_endpoint(ep("a", "/x"), r::handler{}), doctest::Contains("empty handler"),
                         std::invalid_argument);
    h.gw.add_endpoint(ep("a", "/x"), noop);
    CHECK_THROWS_WITH_AS(h.gw.add_endpoint(ep("b", "/x"), noop), doctest::Contains("already registered"),
                         std::invalid_argument);
    CHECK_THROWS_AS(h.gw.add_routed_service({ep("c", "/y")}, nullptr), std::invalid_argument);
}

TEST_CASE("gateway options are validated at construction") {
    auto validator = std::make_shared<scripted_validator>();
    auto store = std::make_shared<session::memory_session_store>();
    auto bad = default_options();
    bad.guid_salt.clear();
    CHECK_THROWS_WITH_AS(s::gateway(bad, validator, store), doctest::Contains("guid_salt"), std::invalid_argument);
    bad = default_options();
    bad.path = "connect";
    CHECK_THROWS_WITH_AS(s::gateway(bad, validator, store), doctest::Contains("path"), std::invalid_argument);
    bad = default_options();
    bad.max_payload_size = bad.max_message_size + 1;
    CHECK_THROWS_WITH_AS(s::gateway(bad, validator, store), doctest::Contains("max_payload_size"),
                         std::invalid_argument);
    bad = default_options();
    bad.tls_certificate_file = "cert.pem";
    CHECK_THROWS_WITH_AS(s::gateway(bad, validator, store), doctest::Contains("set together"), std::invalid_argument);
    bad = default_options();
    bad.io_threads = 0;
    CHECK_THROWS_WITH_AS(s::gateway(bad, validator, store), doctest::Contains("io_threads"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(s::gateway(default_options(), nullptr, store), doctest::Contains("token_validator"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(s::gateway(default_options(), validator, nullptr), doctest::Contains("session_store"),
                         std::invalid_argument);
}
