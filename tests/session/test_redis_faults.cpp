// redis_session_store when Redis dies, hangs or restarts: every operation
// completes promptly with a clear error, the store recovers by itself, and
// with persistence on no session is lost across a crash.
#include "redis_fixture.hpp"

#include <gatehouse/testing/session_store_conformance.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <functional>
#include <chrono>
#include <thread>

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>

using namespace gatehouse;
using namespace gatehouse::session;
using namespace std::chrono_literals;
namespace kit = gatehouse::testing::conformance;
using adapters::redis::redis_session_store;
using steady = std::chrono::steady_clock;

namespace {

adapters::redis::redis_session_store_options fault_options(int port) {
    auto o = test::redis_options(port);
    o.command_timeout = 300ms;
    o.reconnect_delay_min = 20ms;
    o.reconnect_delay_max = 200ms;
    return o;
}

bool unavailable(std::error_code ec) {
    return ec == session_errc::backend_unavailable || ec == session_errc::timeout;
}

/// Retries `op` until it succeeds; returns how long that took.
template <class Op>
std::chrono::milliseconds time_until_success(Op op, std::chrono::milliseconds limit = 5s) {
    const auto start = steady::now();
    while (steady::now() - start < limit) {
        if (!op()) break;
        std::this_thread::sleep_for(20ms);
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
}

}  // namespace

TEST_CASE("redis faults: Redis killed mid-run, then back") {
    test::redis_server server;
    test::io_runner io;
    redis_session_store store(io.executor(), fault_options(server.port()));
    auto before = kit::create(store, kit::sample_record("fault-acct"));
    REQUIRE_FALSE(before.ec);

    // A stream of operations in flight while Redis dies: every one of them
    // completes (success before the kill, a clear error after), none hangs.
    constexpr int total = 2000;
    std::atomic<int> completed{0}, ok{0}, failed_clearly{0}, other{0};
    std::atomic<bool> killed{false};
    std::thread load_generator([&] {
        for (int i = 0; i < total; ++i) {
            store.load(before.value.session_id, [&](std::error_code ec, session_record) {
                if (!ec) ++ok;
                else if (unavailable(ec)) ++failed_clearly;
                else ++other;
                ++completed;
            });
            if (i == total / 4) {
                server.kill();
                killed = true;
            }
            if (i % 64 == 0) std::this_thread::sleep_for(1ms);
        }
    });
    load_generator.join();
    const auto deadline = steady::now() + 3s;
    while (completed.load() < total && steady::now() < deadline) std::this_thread::sleep_for(5ms);
    CHECK(completed.load() == total);
    CHECK(ok.load() > 0);
    CHECK(failed_clearly.load() > 0);
    CHECK(other.load() == 0);

    // While Redis is down every kind of operation fails at once.
    for (int i = 0; i < 3; ++i) {
        const auto start = steady::now();
        auto r = kit::create(store, kit::sample_record("fault-acct"));
        CHECK(unavailable(r.ec));
        CHECK(unavailable(kit::load(store, before.value.session_id).ec));
        CHECK(unavailable(kit::touch(store, before.value.session_id)));
        CHECK(unavailable(kit::revoke(store, before.value.session_id)));
        CHECK(unavailable(kit::list_account(store, "fault-acct").ec));
        CHECK(unavailable(kit::consume(store, random_reconnect_token()).ec));
        CHECK(steady::now() - start < 2s);
        CHECK_FALSE(store.connected());
    }

    server.restart();
    std::error_code last;
    const auto took = time_until_success([&] {
        last = kit::create(store, kit::sample_record("fault-acct")).ec;
        return bool(last);
    });
    CHECK_FALSE(last);
    CHECK(took < 3s);
    CHECK(store.connected());
    MESSAGE("recovered " << took.count() << " ms after the restart");
    // No persistence in this test: the old session went with the server.
    CHECK(kit::load(store, before.value.session_id).ec == session_errc::not_found);
}

TEST_CASE("redis faults: a hung Redis (SIGSTOP) gives timeouts, not hangs") {
    test::redis_server server;
    test::io_runner io;
    const auto options = fault_options(server.port());
    redis_session_store store(io.executor(), options);
    auto created = kit::create(store, kit::sample_record("hung-acct"));
    REQUIRE_FALSE(created.ec);

    server.pause();
    // The connection is up but nothing answers: the command times out.
    auto start = steady::now();
    CHECK(kit::load(store, created.value.session_id).ec == session_errc::timeout);
    auto took = steady::now() - start;
    CHECK(took >= options.command_timeout - 10ms);
    CHECK(took < options.command_timeout + 500ms);
    // Afterwards (reconnecting to a process that accepts but never answers)
    // each operation fails within the timeout too.
    for (int i = 0; i < 3; ++i) {
        std::this_thread::sleep_for(100ms);
        start = steady::now();
        const auto ec = kit::load(store, created.value.session_id).ec;
        took = steady::now() - start;
        CHECK(unavailable(ec));
        CHECK(took < options.command_timeout + 500ms);
    }
    // Many operations at once all time out together.
    std::atomic<int> timed_out{0};
    std::atomic<int> done{0};
    for (int i = 0; i < 100; ++i)
        store.touch(created.value.session_id, [&](std::error_code ec) {
            if (unavailable(ec)) ++timed_out;
            ++done;
        });
    const auto deadline = steady::now() + 2s;
    while (done.load() < 100 && steady::now() < deadline) std::this_thread::sleep_for(5ms);
    CHECK(done.load() == 100);
    CHECK(timed_out.load() == 100);

    server.resume();
    std::error_code last;
    const auto recovery = time_until_success([&] {
        last = kit::load(store, created.value.session_id).ec;
        return bool(last);
    });
    CHECK_FALSE(last);
    CHECK(recovery < 3s);
}

TEST_CASE("redis faults: closing the store completes pending operations") {
    test::redis_server server;
    test::io_runner io;
    auto store = std::make_unique<redis_session_store>(io.executor(), fault_options(server.port()));
    auto created = kit::create(*store, kit::sample_record("close-acct"));
    REQUIRE_FALSE(created.ec);
    server.pause();
    auto pending = std::make_shared<std::promise<std::error_code>>();
    auto result = pending->get_future();
    store->load(created.value.session_id, [pending](std::error_code ec, session_record) { pending->set_value(ec); });
    store->close();
    REQUIRE(result.wait_for(2s) == std::future_status::ready);
    CHECK(result.get() == session_errc::store_closed);
    CHECK(kit::load(*store, created.value.session_id).ec == session_errc::store_closed);
    store.reset();
    server.resume();
}

TEST_CASE("redis faults: with persistence, a crash and restart lose no session") {
    test::redis_server::options persistent;
    persistent.append_only = true;
    test::redis_server server(persistent);
    test::io_runner io;
    redis_session_store store(io.executor(), fault_options(server.port()));
    const std::string account = kit::unique_account("durable");

    std::vector<session_record> live, revoked;
    std::vector<std::string> unused_tokens, used_tokens;
    for (int i = 0; i < 40; ++i) {
        auto r = kit::sample_record(account);
        r.attributes["n"] = std::to_string(i);
        auto created = kit::create(store, r);
        REQUIRE_FALSE(created.ec);
        (i % 4 == 0 ? revoked : live).push_back(created.value);
    }
    for (auto& r : revoked) REQUIRE_FALSE(kit::revoke(store, r.session_id));
    for (std::size_t i = 0; i < 10; ++i) {
        auto token = kit::issue(store, live[i].session_id, 5min);
        REQUIRE_FALSE(token.ec);
        if (i % 2 == 0) {
            REQUIRE_FALSE(kit::consume(store, token.value.token).ec);
            used_tokens.push_back(token.value.token);
        } else {
            unused_tokens.push_back(token.value.token);
        }
    }
    auto change = live.back();
    change.node_id = "node-after-update";
    REQUIRE_FALSE(kit::update(store, change).ec);
    live.back().node_id = change.node_id;

    server.kill();  // SIGKILL: no shutdown, no final save
    server.restart();

    // The same store reconnects by itself.
    std::error_code last;
    time_until_success([&] {
        last = kit::load(store, live.front().session_id).ec;
        return bool(last);
    });
    REQUIRE_FALSE(last);
    for (const auto& r : live) {
        auto loaded = kit::load(store, r.session_id);
        REQUIRE_FALSE(loaded.ec);
        kit::check_same_content(loaded.value, r);
    }
    for (const auto& r : revoked) CHECK(kit::load(store, r.session_id).ec == session_errc::revoked);
    for (const auto& t : used_tokens) CHECK(kit::consume(store, t).ec == session_errc::token_consumed);
    for (const auto& t : unused_tokens) CHECK_FALSE(kit::consume(store, t).ec);
    CHECK(kit::list_account(store, account).value.size() == live.size());
}

TEST_CASE("redis faults: a server that keeps resetting connections") {
    // Accepts connections, swallows what it reads for a few milliseconds, then
    // resets them, again and again, while operations keep coming: every one
    // of them completes with a clear error.
    asio::io_context server_io;
    asio::ip::tcp::acceptor acceptor(server_io, {asio::ip::make_address("127.0.0.1"), 0});
    struct doomed {
        asio::ip::tcp::socket socket;
        asio::steady_timer timer;
        std::array<char, 65536> sink{};
    };
    std::function<void(std::shared_ptr<doomed>)> swallow = [&](std::shared_ptr<doomed> c) {
        c->socket.async_read_some(asio::buffer(c->sink), [&, c](std::error_code ec, std::size_t) {
            if (!ec) swallow(c);
        });
    };
    std::function<void()> accept = [&] {
        acceptor.async_accept([&](std::error_code ec, asio::ip::tcp::socket socket) {
            if (ec) return;
            auto c = std::make_shared<doomed>(doomed{std::move(socket), asio::steady_timer(server_io), {}});
            swallow(c);
            c->timer.expires_after(5ms);
            c->timer.async_wait([c](std::error_code) {
                std::error_code ignored;
                c->socket.set_option(asio::socket_base::linger(true, 0), ignored);  // RST, not FIN
                c->socket.close(ignored);
            });
            accept();
        });
    };
    accept();
    std::thread server_thread([&] { server_io.run(); });

    test::io_runner io;
    auto options = fault_options(acceptor.local_endpoint().port());
    options.reconnect_delay_min = 1ms;
    options.reconnect_delay_max = 2ms;
    redis_session_store store(io.executor(), options);
    std::atomic<int> done{0}, clear{0};
    int issued = 0;
    const auto stop = steady::now() + 1500ms;
    while (steady::now() < stop) {
        for (int i = 0; i < 20; ++i, ++issued)
            store.load(random_session_id(), [&](std::error_code ec, session_record) {
                if (unavailable(ec)) ++clear;
                ++done;
            });
        std::this_thread::sleep_for(200us);
    }
    const auto deadline = steady::now() + 5s;
    while (done.load() < issued && steady::now() < deadline) std::this_thread::sleep_for(5ms);
    CHECK(done.load() == issued);
    CHECK(clear.load() == issued);  // the server never answers

    asio::post(server_io, [&] { acceptor.close(); });
    server_thread.join();
}

TEST_CASE("redis faults: writing to a server that has gone raises no SIGPIPE in the host") {
    // A write to a socket whose peer is gone fails with EPIPE and raises
    // SIGPIPE unless it asks not to (the store writes only through Asio, which
    // sends with MSG_NOSIGNAL). With SIGPIPE at its default action, one such
    // signal would end this program. Then the store against a server that
    // accepts and closes at once, again and again.
    struct sigaction previous{};
    struct sigaction default_action{};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    REQUIRE(::sigaction(SIGPIPE, &default_action, &previous) == 0);

    SUBCASE("the way the store writes: asio::async_write on a TCP socket whose peer reset") {
        // Deterministic: after the peer's reset has been seen, a write fails
        // with EPIPE, which would raise SIGPIPE without MSG_NOSIGNAL.
        asio::io_context io;
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
        asio::ip::tcp::socket client(io);
        client.connect(acceptor.local_endpoint());
        auto server = acceptor.accept();
        server.set_option(asio::socket_base::linger(true, 0));
        server.close();  // RST
        std::array<char, 16> buffer{};
        std::error_code read_error;
        client.read_some(asio::buffer(buffer), read_error);
        CHECK(read_error == asio::error::connection_reset);
        std::error_code write_error;
        const std::string payload(4096, 'x');
        asio::async_write(client, asio::buffer(payload), [&](std::error_code ec, std::size_t) { write_error = ec; });
        io.run();
        CHECK(write_error == asio::error::broken_pipe);
        sigset_t pending;
        sigpending(&pending);
        CHECK(sigismember(&pending, SIGPIPE) == 0);
    }

    asio::io_context server_io;
    asio::ip::tcp::acceptor acceptor(server_io, {asio::ip::make_address("127.0.0.1"), 0});
    std::atomic<int> accepted{0};
    std::function<void()> accept = [&] {
        acceptor.async_accept([&](std::error_code ec, asio::ip::tcp::socket socket) {
            if (ec) return;
            ++accepted;
            std::error_code ignored;
            socket.close(ignored);
            accept();
        });
    };
    accept();
    std::thread server_thread([&] { server_io.run(); });

    test::io_runner io;
    auto options = fault_options(acceptor.local_endpoint().port());
    options.reconnect_delay_min = 1ms;
    options.reconnect_delay_max = 2ms;
    redis_session_store store(io.executor(), options);
    auto big = kit::sample_record("sigpipe-acct");
    big.attributes["padding"] = std::string(1000, 'p');  // large writes
    std::atomic<int> done{0}, clear{0};
    int issued = 0;
    const auto stop = steady::now() + 500ms;
    while (steady::now() < stop) {
        for (int i = 0; i < 50; ++i, ++issued)
            store.create(big, [&](std::error_code ec, session_record) {
                if (unavailable(ec)) ++clear;
                ++done;
            });
        std::this_thread::sleep_for(1ms);
    }
    const auto deadline = steady::now() + 5s;
    while (done.load() < issued && steady::now() < deadline) std::this_thread::sleep_for(5ms);
    CHECK(done.load() == issued);
    CHECK(clear.load() == issued);
    CHECK(accepted.load() > 1);  // it did reconnect, and write, again and again
    sigset_t pending;
    sigpending(&pending);
    CHECK(sigismember(&pending, SIGPIPE) == 0);

    asio::post(server_io, [&] { acceptor.close(); });
    server_thread.join();
    ::sigaction(SIGPIPE, &previous, nullptr);
}
