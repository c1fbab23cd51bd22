// Control-frame floods over real sockets (websocketpp transport, issue 13
// item 1): a client that writes pings (or close frames) as fast as it can
// and never reads must not make the server queue replies without bound.
// Pongs count in gateway_options::max_send_queue_bytes like data frames;
// beyond, the connection is closed with 4005 (slow consumer) and, since the
// client does not read the close frame either, dropped after the close
// handshake timeout. The server's RSS (this process) before and after each
// flood is printed; it must stay within a bound far below the flood's size.
// A client that pings as much but reads its pongs is answered and served.
#include "socket_harness.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

using namespace gatehouse::test;
using namespace gatehouse::test::sockets;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;  // quarantine and shadow memory: RSS says nothing
#else
constexpr bool sanitized = false;
#endif

constexpr auto close_handshake = ms(2000);

std::size_t rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
    return 0;
}

s::gateway_options flood_options(std::size_t io_threads) {
    auto o = default_options();  // the harness defaults; no high message rate needed
    o.io_threads = io_threads;
    o.handshake_timeout = close_handshake;  // also bounds the closing handshake
    return o;
}

/// `frame` repeated to about 1 MiB: one write of the flood.
std::string chunk_of(const std::string& frame) {
    std::string chunk;
    chunk.reserve((1 << 20) + frame.size());
    while (chunk.size() < (1 << 20)) chunk += frame;
    return chunk;
}

struct flood_result {
    std::size_t sent = 0;     ///< bytes written
    bool refused = false;     ///< a write failed: the server closed the socket
    ms elapsed{0};
};

/// Writes `frame` over and over, never reading, until `total` bytes are
/// written, `time_limit` has passed or the server is gone.
flood_result flood(ws_client& c, const std::string& frame, std::size_t total, ms time_limit) {
    const std::string chunk = chunk_of(frame);
    flood_result r;
    const auto start = clock_type::now();
    while (r.sent < total && clock_type::now() - start < time_limit) {
        if (!c.send_raw(chunk)) {
            r.refused = true;
            break;
        }
        r.sent += chunk.size();
    }
    r.elapsed = std::chrono::duration_cast<ms>(clock_type::now() - start);
    return r;
}

/// After the flood the client reads: what the server queued, then a close
/// frame (4005) or the end of the socket, within `timeout`. Returns the
/// close code seen (0: the socket ended without one; nothing: still open).
std::optional<std::uint16_t> wait_for_the_end(ws_client& c, ms timeout, std::size_t& pongs) {
    const auto deadline = clock_type::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<ms>(deadline - clock_type::now());
        if (left <= ms(0)) return std::nullopt;
        auto f = c.read_frame(left);
        if (!f) {
            if (c.socket.closed()) return std::uint16_t{0};
            return std::nullopt;
        }
        if (f->opcode == lg::ws_opcode::pong) ++pongs;
        if (f->opcode == lg::ws_opcode::close) {
            const auto code = f->close_code();
            c.socket.wait_closed(timeout);
            return code;
        }
    }
}

std::size_t flood_bytes() {
    if (const char* e = std::getenv("GATEHOUSE_FLOOD_MB")) return std::stoul(e) << 20;
    return std::size_t{200} << 20;
}

void control_flood(const std::string& what, const std::string& frame, std::size_t total, std::size_t io_threads) {
    INFO(what);
    live_gateway g(flood_options(io_threads));
    // A small receive window (set before connecting): the server's writes
    // stall sooner.
    ws_client c(g.port, nullptr, 16 * 1024);
    c.connect(token("flooder", session_b));

    const auto before = rss_kib();
    const auto r = flood(c, frame, total, ms(30000));
    const auto after = rss_kib();
    MESSAGE(what << " (" << io_threads << " I/O thread" << std::string(io_threads > 1 ? "s" : "") << "): " << (r.sent >> 20)
                 << " MiB written in " << r.elapsed.count() << " ms" << std::string(r.refused ? ", then refused" : "")
                 << "; server RSS " << before / 1024 << " MiB before, " << after / 1024 << " MiB after");

    std::size_t pongs = 0;
    const auto end = wait_for_the_end(c, close_handshake + ms(8000), pongs);
    MESSAGE(what << ": " << pongs << " pongs read after the flood; "
                 << (end ? (*end ? "close code " + std::to_string(*end) : std::string("socket closed"))
                         : std::string("still open")));
    REQUIRE_MESSAGE(end.has_value(), "the server never closed the connection");
    if (*end != 0) CHECK(*end == 4005);
    if (!sanitized) CHECK(after < before + 64 * 1024);  // KiB: far below the flood's size
    CHECK(g.wait_for_connections(0, ms(5000)));
}

std::string masked(lg::ws_opcode op, std::string_view payload) {
    std::string out;
    lg::append_client_frame(out, op, payload, 0x1b2c3d4eu);
    return out;
}

}  // namespace

TEST_CASE("hostile control frames: a ping flood from a client that never reads is closed, memory stays bounded") {
    SUBCASE("125-byte pings, one I/O thread") {
        control_flood("125-byte ping flood", masked(lg::ws_opcode::ping, std::string(125, 'p')), flood_bytes(), 1);
    }
    SUBCASE("empty pings, two I/O threads") {
        // 6 bytes on the wire, a whole queued frame each to answer.
        control_flood("empty ping flood", masked(lg::ws_opcode::ping, ""), flood_bytes() / 4, 2);
    }
}

TEST_CASE("hostile control frames: a close-frame flood gets one answer and the socket is closed") {
    live_gateway g(flood_options(1));
    ws_client c(g.port);
    c.connect(token("closer", session_b));
    const auto before = rss_kib();
    const auto r = flood(c, masked(lg::ws_opcode::close, close_payload(1000)), flood_bytes() / 4, ms(30000));
    const auto after = rss_kib();
    MESSAGE("close flood: " << (r.sent >> 20) << " MiB written in " << r.elapsed.count() << " ms"
                            << std::string(r.refused ? ", then refused" : "") << "; server RSS " << before / 1024
                            << " MiB before, " << after / 1024 << " MiB after");
    std::size_t pongs = 0;
    const auto end = wait_for_the_end(c, close_handshake + ms(8000), pongs);
    REQUIRE(end.has_value());
    if (*end != 0) CHECK(*end == 1000);  // the acknowledgement of the first one
    if (!sanitized) CHECK(after < before + 64 * 1024);
    CHECK(g.wait_for_connections(0, ms(5000)));
}

TEST_CASE("hostile control frames: a client that pings as much but reads its pongs is answered and served") {
    live_gateway g(flood_options(2));
    ws_client c(g.port);
    c.connect(token("pinger", session_b));
    std::size_t pongs = 0;
    std::string last;
    for (int batch = 0; batch < 40; ++batch) {
        std::string out;
        for (int i = 0; i < 500; ++i) {
            std::string payload(125, 'a');
            const auto n = std::to_string(batch * 500 + i);
            payload.replace(0, n.size(), n);
            last = payload;
            out += masked(lg::ws_opcode::ping, payload);
        }
        REQUIRE(c.send_raw(out));
        std::string seen;
        while (seen != last) {
            auto f = c.read_frame(ms(5000));
            REQUIRE_MESSAGE(f.has_value(), "pongs stopped after " << pongs);
            REQUIRE(f->opcode == lg::ws_opcode::pong);
            ++pongs;
            seen = f->payload;
        }
    }
    CHECK(pongs == 20000);
    const auto reply = c.call("/echo", "{\"after\":\"pings\"}", 7);
    REQUIRE(reply.has_value());
    CHECK(reply->code == p::response_code::ok);
    CHECK(c.close_cleanly());
}
