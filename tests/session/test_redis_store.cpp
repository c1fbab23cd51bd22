// redis_session_store against a real redis-server: the conformance kit, the
// key schema, and every kind of bad reply.
#include "redis_fixture.hpp"

#include <gatehouse/adapters/redis/detail/record_codec.hpp>     // the codec's own cases
#include <gatehouse/adapters/redis/detail/session_scripts.hpp>  // the scripts' SHA-1s
#include <gatehouse/testing/session_store_conformance.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <thread>

using namespace gatehouse;
using namespace gatehouse::session;
using namespace std::chrono_literals;
namespace kit = gatehouse::testing::conformance;
using adapters::redis::redis_session_store;

struct redis_store_factory {
    test::io_runner io;
    std::shared_ptr<session_store> make(const session_store_options& options) {
        return std::make_shared<redis_session_store>(io.executor(),
                                                     test::redis_options(test::shared_redis().port(), options));
    }
};
TYPE_TO_STRING(redis_store_factory);
GATEHOUSE_SESSION_STORE_CONFORMANCE(redis_store_factory);

namespace {

session_record record_for(const std::string& account) {
    auto r = kit::sample_record(account);
    return r;
}

}  // namespace

TEST_CASE("redis store: record codec round trip and corruption") {
    namespace d = adapters::redis::detail;
    auto r = kit::sample_record("acc:with:colons\n\0binary");
    r.created_at = now_ms();
    r.attributes["empty"] = "";
    const auto blob = d::encode_record(r);
    session_record back;
    d::reconnect_segment reconnect;
    REQUIRE(d::decode_record(blob, back, reconnect));
    CHECK(reconnect.expires_ms == 0);
    CHECK(back.reconnect_expires_at == time_point{});
    CHECK(back.account_id == r.account_id);
    CHECK(back.created_at == r.created_at);
    CHECK(back.roles == r.roles);
    CHECK(back.permissions == r.permissions);
    CHECK(back.node_id == r.node_id);
    CHECK(back.token_expires_at == r.token_expires_at);
    CHECK(back.attributes == r.attributes);
    for (std::size_t cut = 0; cut < blob.size(); ++cut) {
        session_record partial;
        CHECK_FALSE(d::decode_record(blob.substr(0, cut), partial, reconnect));
    }
    session_record junk;
    CHECK_FALSE(d::decode_record(blob + "x", junk, reconnect));
    CHECK_FALSE(d::decode_record("R", junk, reconnect));
    CHECK_FALSE(d::decode_record("G1zzzzzzzz", junk, reconnect));
    auto bad_segment = blob;
    bad_segment[12] = 'x';
    CHECK_FALSE(d::decode_record(bad_segment, junk, reconnect));
}

TEST_CASE("redis store: the documented key schema") {
    auto& server = test::shared_redis();
    test::io_runner io;
    auto options = test::redis_options(server.port());
    redis_session_store store(io.executor(), options);
    const auto p = options.key_prefix;
    auto created = kit::create(store, record_for("schema-acct"));
    REQUIRE_FALSE(created.ec);
    const auto id = created.value.session_id;
    // In keys, tokens and account indexes an id is kept without its dashes.
    auto key_id = id;
    key_id.erase(std::remove(key_id.begin(), key_id.end(), '-'), key_id.end());
    REQUIRE(key_id.size() == 32);
    CHECK(std::string("gatehouse:s:").size() + key_id.size() == 44);  // the default prefix: Redis's embstr limit
    CHECK(server.command({"EXISTS", p + "s:" + id}) == "0");
    CHECK(server.command({"TYPE", p + "s:" + key_id}) == "string");
    CHECK(server.command({"TYPE", p + "a:" + key_id}) == "string");
    CHECK(server.command({"SISMEMBER", p + "acct:schema-acct", key_id}) == "1");
    const auto record_ttl = std::stoll(server.command({"PTTL", p + "s:" + key_id}));
    CHECK(record_ttl > (options.max_lifetime - 5s).count());
    CHECK(record_ttl <= (options.max_lifetime + options.tombstone_retention).count());
    const auto idle_ttl = std::stoll(server.command({"PTTL", p + "a:" + key_id}));
    CHECK(idle_ttl > (options.idle_timeout - 5s).count());
    CHECK(idle_ttl <= options.idle_timeout.count());

    auto token = kit::issue(store, id, 1min);
    REQUIRE_FALSE(token.ec);
    const auto hash = reconnect_token_hash(token.value.token);
    CHECK(server.command({"GET", p + "t:" + hash}) == "L" + key_id);
    CHECK(server.command({"GET", p + "s:" + key_id}).substr(42, 64) == hash);
    // The token itself is stored nowhere.
    CHECK(server.command({"EXISTS", p + "t:" + token.value.token}) == "0");
    REQUIRE_FALSE(kit::consume(store, token.value.token).ec);
    CHECK(server.command({"GET", p + "t:" + hash}) == "C" + key_id);
    CHECK(server.command({"GET", p + "s:" + key_id}).find(hash) == std::string::npos);

    REQUIRE_FALSE(kit::revoke(store, id));
    CHECK(server.command({"GET", p + "s:" + key_id}) == "R");
    CHECK(server.command({"EXISTS", p + "a:" + key_id}) == "0");
    CHECK(std::stoll(server.command({"PTTL", p + "s:" + key_id})) <= options.tombstone_retention.count());
    CHECK(server.command({"SISMEMBER", p + "acct:schema-acct", key_id}) == "0");
}

TEST_CASE("redis store: values of the wrong type or shape under its keys") {
    auto& server = test::shared_redis();
    test::io_runner io;
    auto options = test::redis_options(server.port());
    redis_session_store store(io.executor(), options);
    const auto p = options.key_prefix;
    auto created = kit::create(store, record_for("wrong-acct"));
    REQUIRE_FALSE(created.ec);
    const auto id = created.value.session_id;
    auto key_id = id;
    key_id.erase(std::remove(key_id.begin(), key_id.end(), '-'), key_id.end());

    SUBCASE("a hash where the record should be") {
        server.command({"DEL", p + "s:" + key_id});
        server.command({"HSET", p + "s:" + key_id, "field", "value"});
        CHECK(kit::load(store, id).ec == session_errc::bad_reply);
        CHECK(kit::revoke(store, id) == session_errc::bad_reply);
        CHECK(kit::update(store, created.value).ec == session_errc::bad_reply);
        CHECK(kit::issue(store, id, 1min).ec == session_errc::bad_reply);
    }
    SUBCASE("a list where the activity key should be") {
        server.command({"DEL", p + "a:" + key_id});
        server.command({"RPUSH", p + "a:" + key_id, "x"});
        CHECK(kit::touch(store, id) == session_errc::bad_reply);
    }
    SUBCASE("a string where the account index should be") {
        server.command({"DEL", p + "acct:wrong-acct"});
        server.command({"SET", p + "acct:wrong-acct", "x"});
        CHECK(kit::list_account(store, "wrong-acct").ec == session_errc::bad_reply);
        CHECK(kit::revoke_account(store, "wrong-acct").ec == session_errc::bad_reply);
    }
    SUBCASE("a set where a token should be") {
        const auto token = random_reconnect_token();
        server.command({"SADD", p + "t:" + reconnect_token_hash(token), "x"});
        CHECK(kit::consume(store, token).ec == session_errc::bad_reply);
    }
    SUBCASE("garbage strings") {
        server.command({"SET", p + "s:" + key_id, "garbage", "KEEPTTL"});
        CHECK(kit::load(store, id).ec == session_errc::corrupt_record);
        CHECK(kit::revoke(store, id) == session_errc::corrupt_record);
        CHECK(kit::update(store, created.value).ec == session_errc::corrupt_record);
    }
    SUBCASE("a non-numeric activity time") {
        server.command({"SET", p + "a:" + key_id, "yesterday", "KEEPTTL"});
        CHECK(kit::load(store, id).ec == session_errc::corrupt_record);
    }
    SUBCASE("an account index naming something that is not a session id") {
        const std::string junk_id(32, 'z');
        server.command({"SET", p + "s:" + junk_id, server.command({"GET", p + "s:" + key_id})});
        server.command({"SET", p + "a:" + junk_id, server.command({"GET", p + "a:" + key_id})});
        server.command({"SADD", p + "acct:wrong-acct", junk_id});
        CHECK(kit::list_account(store, "wrong-acct").ec == session_errc::bad_reply);
    }
    SUBCASE("a token naming something that is not a session id") {
        const std::string junk_id = key_id.substr(0, 31);
        server.command({"SET", p + "s:" + junk_id, server.command({"GET", p + "s:" + key_id})});
        server.command({"SET", p + "a:" + junk_id, server.command({"GET", p + "a:" + key_id})});
        const auto token = random_reconnect_token();
        server.command({"SET", p + "t:" + reconnect_token_hash(token), "L" + junk_id});
        CHECK(kit::consume(store, token).ec == session_errc::bad_reply);
    }
    SUBCASE("a malformed reconnection segment") {
        auto value = server.command({"GET", p + "s:" + key_id});
        REQUIRE(value.size() > 20);
        value[15] = 'x';
        server.command({"SET", p + "s:" + key_id, value, "KEEPTTL"});
        CHECK(kit::load(store, id).ec == session_errc::corrupt_record);
        CHECK(kit::issue(store, id, 1min).ec == session_errc::corrupt_record);
        CHECK(kit::revoke(store, id) == session_errc::corrupt_record);
    }
}

namespace {

// A TCP server that speaks just enough RESP: it answers every command it
// reads with the same canned reply.
class fake_redis {
public:
    explicit fake_redis(std::string reply)
        : reply_(std::move(reply)), acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~fake_redis() {
        asio::post(io_, [this] {
            acceptor_.close();
            for (auto& s : sockets_) s->close();
        });
        thread_.join();
    }
    int port() const { return acceptor_.local_endpoint().port(); }

private:
    struct connection {
        asio::ip::tcp::socket socket;
        std::string buffer;
        std::array<char, 4096> chunk{};
    };

    void accept() {
        acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
            if (ec) return;
            auto c = std::make_shared<connection>(connection{std::move(socket), {}, {}});
            sockets_.push_back(std::shared_ptr<asio::ip::tcp::socket>(c, &c->socket));
            read(c);
            accept();
        });
    }

    void read(std::shared_ptr<connection> c) {
        c->socket.async_read_some(asio::buffer(c->chunk), [this, c](std::error_code ec, std::size_t n) {
            if (ec) return;
            c->buffer.append(c->chunk.data(), n);
            std::string out;
            while (auto used = complete_command(c->buffer)) {
                c->buffer.erase(0, used);
                out += reply_;
            }
            if (out.empty()) return read(c);
            auto data = std::make_shared<std::string>(std::move(out));
            asio::async_write(c->socket, asio::buffer(*data), [this, c, data](std::error_code ec2, std::size_t) {
                if (!ec2) read(c);
            });
        });
    }

    // Bytes of the first complete "*N\r\n($len\r\ndata\r\n){N}" command, or 0.
    static std::size_t complete_command(const std::string& b) {
        std::size_t pos = 0;
        auto line = [&](std::string& out) {
            const auto end = b.find("\r\n", pos);
            if (end == std::string::npos) return false;
            out = b.substr(pos, end - pos);
            pos = end + 2;
            return true;
        };
        std::string l;
        if (!line(l) || l.empty() || l[0] != '*') return 0;
        const long n = std::stol(l.substr(1));
        for (long i = 0; i < n; ++i) {
            if (!line(l) || l.empty() || l[0] != '$') return 0;
            const auto len = static_cast<std::size_t>(std::stol(l.substr(1)));
            if (b.size() < pos + len + 2) return 0;
            pos += len + 2;
        }
        return pos;
    }

    std::string reply_;
    asio::io_context io_;
    asio::ip::tcp::acceptor acceptor_;
    std::vector<std::shared_ptr<asio::ip::tcp::socket>> sockets_;
    std::thread thread_;
};

void check_every_operation_fails_with(int port, session_errc expected, bool revoke_account_too = true) {
    test::io_runner io;
    auto options = test::redis_options(port);
    options.command_timeout = 2s;
    redis_session_store store(io.executor(), options);
    const auto id = random_session_id();
    auto r = record_for("fake-acct");
    r.session_id = id;
    CHECK(kit::create(store, r).ec == expected);
    CHECK(kit::load(store, id).ec == expected);
    CHECK(kit::touch(store, id) == expected);
    CHECK(kit::update(store, r).ec == expected);
    CHECK(kit::revoke(store, id) == expected);
    if (revoke_account_too) CHECK(kit::revoke_account(store, "fake-acct").ec == expected);
    CHECK(kit::list_account(store, "fake-acct").ec == expected);
    CHECK(kit::issue(store, id, 1min).ec == expected);
    CHECK(kit::consume(store, random_reconnect_token()).ec == expected);
}

}  // namespace

TEST_CASE("redis store: replies of the wrong type from a fake server") {
    SUBCASE("integers everywhere") {
        fake_redis fake(":7\r\n");
        // revoke_account legitimately answers an integer (a count).
        check_every_operation_fails_with(fake.port(), session_errc::bad_reply, false);
    }
    SUBCASE("status replies everywhere") {
        fake_redis fake("+OK\r\n");
        check_every_operation_fails_with(fake.port(), session_errc::bad_reply);
    }
    SUBCASE("arrays of the wrong shape") {
        fake_redis fake("*5\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n$0\r\n\r\n*0\r\n");
        check_every_operation_fails_with(fake.port(), session_errc::bad_reply);
    }
    SUBCASE("records that are not records") {
        // The right shape for a load (two strings), with junk inside.
        fake_redis fake("*2\r\n$4\r\njunk\r\n$2\r\n12\r\n");
        test::io_runner io;
        redis_session_store store(io.executor(), test::redis_options(fake.port()));
        CHECK(kit::load(store, random_session_id()).ec == session_errc::corrupt_record);
    }
    SUBCASE("bytes that are not RESP") {
        // The command they answer fails with bad_reply; the link, out of
        // step, is dropped, and the store reconnects by itself.
        fake_redis fake("?what\r\n");
        test::io_runner io;
        auto options = test::redis_options(fake.port());
        options.reconnect_delay_min = 5ms;
        options.reconnect_delay_max = 10ms;
        redis_session_store store(io.executor(), options);
        for (int attempt = 0; attempt < 2; ++attempt) {
            const auto deadline = std::chrono::steady_clock::now() + 5s;
            while (!store.connected() && std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(1ms);
            REQUIRE(store.connected());
            CHECK(kit::load(store, random_session_id()).ec == session_errc::bad_reply);
        }
    }
    SUBCASE("error replies") {
        fake_redis fake("-ERR something broke\r\n");
        check_every_operation_fails_with(fake.port(), session_errc::backend_error);
    }
}

TEST_CASE("redis store: invalid options are rejected at construction") {
    test::io_runner io;
    auto good = test::redis_options(6379);
    auto bad = good;
    bad.port = 0;
    CHECK_THROWS_AS(redis_session_store(io.executor(), bad), std::invalid_argument);
    bad = good;
    bad.key_prefix.clear();
    CHECK_THROWS_AS(redis_session_store(io.executor(), bad), std::invalid_argument);
    bad = good;
    bad.command_timeout = 0ms;
    CHECK_THROWS_AS(redis_session_store(io.executor(), bad), std::invalid_argument);
    bad = good;
    bad.reconnect_delay_max = 1ms;
    CHECK_THROWS_AS(redis_session_store(io.executor(), bad), std::invalid_argument);
    bad = good;
    bad.host.clear();
    CHECK_THROWS_AS(redis_session_store(io.executor(), bad), std::invalid_argument);
    bad = good;
    bad.database = -1;
    CHECK_THROWS_AS(redis_session_store(io.executor(), bad), std::invalid_argument);
}

TEST_CASE("redis store: the connection options are the ones the event bus shares") {
    namespace d = adapters::redis::detail;
    adapters::redis::redis_session_store_options o;
    d::connection_options& connection = o;  // one struct for both adapters
    CHECK(connection.host == "127.0.0.1");
    CHECK(connection.port == 6379);
    CHECK(o.key_prefix == "gatehouse:");  // the store's own default
    CHECK(d::connection_options_problem(connection) == nullptr);
    connection.reconnect_delay_min = 0ms;
    CHECK(std::string(d::connection_options_problem(connection)) == "timeouts must be positive (and max >= min delay)");
}

TEST_CASE("redis store: completions arrive on the executor's threads") {
    test::io_runner io;
    redis_session_store store(io.executor(), test::redis_options(test::shared_redis().port()));
    const auto caller = std::this_thread::get_id();
    std::atomic<bool> on_caller{true};
    auto created = kit::await<session_record>([&](auto done) {
        store.create(record_for("thread-acct"), [&, done](std::error_code ec, session_record r) {
            on_caller = std::this_thread::get_id() == caller;
            done(ec, std::move(r));
        });
    });
    CHECK_FALSE(created.ec);
    CHECK_FALSE(on_caller.load());
    // Validation errors too: nothing completes on the caller's thread.
    auto invalid = kit::await<session_record>([&](auto done) {
        store.load("bad", [&, done](std::error_code ec, session_record r) {
            on_caller = std::this_thread::get_id() == caller;
            done(ec, std::move(r));
        });
    });
    CHECK(invalid.ec == session_errc::invalid_session_id);
    CHECK_FALSE(on_caller.load());
}

TEST_CASE("redis store: a host name is resolved, without blocking the executor") {
    // "localhost" may resolve to ::1 before 127.0.0.1 (where the server
    // listens): the store tries each address in turn.
    test::io_runner io;
    auto options = test::redis_options(test::shared_redis().port());
    options.host = "localhost";
    redis_session_store store(io.executor(), options);
    CHECK(kit::load(store, random_session_id()).ec == session_errc::not_found);
    auto created = kit::create(store, record_for("named-host-acct"));
    REQUIRE_FALSE(created.ec);
    CHECK_FALSE(kit::load(store, created.value.session_id).ec);
}

TEST_CASE("redis store: scripts run by their SHA-1, and by their text once Redis forgot them") {
    namespace d = adapters::redis::detail;
    auto& server = test::shared_redis();
    for (const char* script : d::all_scripts)  // what EVALSHA names them by
        CHECK(server.command({"SCRIPT", "LOAD", script}) == d::script_sha1(script));
    test::io_runner io;
    auto options = test::redis_options(server.port());
    redis_session_store store(io.executor(), options);
    auto first = kit::create(store, record_for("script-acct"));
    REQUIRE_FALSE(first.ec);
    // Every script answers NOSCRIPT once: each operation still succeeds.
    REQUIRE(server.command({"SCRIPT", "FLUSH"}) == "OK");
    auto second = kit::create(store, record_for("script-acct"));
    REQUIRE_FALSE(second.ec);
    CHECK_FALSE(kit::update(store, second.value).ec);
    auto token = kit::issue(store, second.value.session_id, 1min);
    REQUIRE_FALSE(token.ec);
    CHECK_FALSE(kit::consume(store, token.value.token).ec);
    CHECK(kit::list_account(store, "script-acct").value.size() == 2);
    CHECK_FALSE(kit::revoke(store, first.value.session_id));
    CHECK(kit::revoke_account(store, "script-acct").value == 1);
    // And again, now that the fallback (EVAL) cached them.
    auto third = kit::create(store, record_for("script-acct"));
    REQUIRE_FALSE(third.ec);
    CHECK_FALSE(kit::revoke(store, third.value.session_id));
}
