// The library's one random source (gatehouse/detail/random.hpp): OpenSSL's
// CSPRNG, failing closed, with a per-thread block for small draws that a
// fork invalidates.
#include <gatehouse/detail/random.hpp>
#include <gatehouse/routing/event.hpp>
#include <gatehouse/session/session.hpp>

#include <doctest/doctest.h>

#include <openssl/rand.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <set>
#include <string>
#include <thread>

namespace {

std::string draw_fast(std::size_t n) {
    std::string out(n, '\0');
    gatehouse::detail::random_bytes_fast(out.data(), n);
    return out;
}

// A RAND method whose every draw fails, installed for one scope.
// RAND_set_rand_method is deprecated in OpenSSL 3 and still the one way to
// make RAND_bytes fail on purpose.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
int failing_bytes(unsigned char*, int) { return 0; }
int failing_status() { return 0; }
struct failing_rand {
    failing_rand() : saved(RAND_get_rand_method()) {
        method.bytes = failing_bytes;
        method.pseudorand = failing_bytes;
        method.status = failing_status;
        REQUIRE(RAND_set_rand_method(&method) == 1);
    }
    ~failing_rand() { RAND_set_rand_method(saved); }
    const RAND_METHOD* saved;
    RAND_METHOD method{};
};
#pragma GCC diagnostic pop

}  // namespace

TEST_CASE("random source: small draws from the per-thread block are all distinct, across refills") {
    std::set<std::string> seen;
    for (int i = 0; i < 5000; ++i) seen.insert(draw_fast(16));  // 80 KB: about 80 refills
    CHECK(seen.size() == 5000);
    // Mixed sizes, and draws over 64 bytes (taken directly).
    for (std::size_t n : {1, 7, 33, 64, 65, 4096}) {
        const auto a = draw_fast(n);
        const auto b = draw_fast(n);
        CHECK(a.size() == n);
        if (n >= 7) CHECK(a != b);
    }
    CHECK(draw_fast(4096) != std::string(4096, '\0'));
}

TEST_CASE("random source: a fork child does not repeat its parent's draws") {
    (void)draw_fast(16);  // the block is filled: the next draws would be equal without the fork handler
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        const auto mine = draw_fast(16);
        const auto written = ::write(fds[1], mine.data(), mine.size());
        ::_exit(written == 16 ? 0 : 1);
    }
    ::close(fds[1]);
    const auto parents = draw_fast(16);
    std::string childs(16, '\0');
    std::size_t got = 0;
    while (got < 16) {
        const auto n = ::read(fds[0], childs.data() + got, 16 - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(got == 16);
    CHECK(WIFEXITED(status));
    CHECK(childs != parents);
}

TEST_CASE("random source: it fails closed when the CSPRNG fails") {
    // A fresh thread: its block is empty, so the fast path must draw too.
    std::thread([] {
        failing_rand broken;
        unsigned char buffer[32];
        CHECK_THROWS_AS(gatehouse::detail::random_bytes(buffer, sizeof buffer), gatehouse::random_unavailable);
        CHECK_THROWS_AS(gatehouse::detail::random_bytes_fast(buffer, 16), gatehouse::random_unavailable);
        CHECK_THROWS_AS((void)gatehouse::session::random_session_id(), gatehouse::random_unavailable);
        CHECK_THROWS_AS((void)gatehouse::session::random_reconnect_token(), gatehouse::random_unavailable);
        CHECK_THROWS_AS((void)gatehouse::routing::random_guid(), gatehouse::random_unavailable);
    }).join();
    // Restored: draws work again.
    CHECK(draw_fast(16).size() == 16);
    CHECK(gatehouse::session::is_session_id(gatehouse::session::random_session_id()));
}
