// The load generator's own parts: if its framing or its percentiles were
// wrong, every figure of benchmarks/run.sh would be.
#include "histogram.hpp"
#include "ws_frame.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace lg = gatehouse::loadgen;

TEST_CASE("loadgen histogram: percentiles within 1/64 of the exact value") {
    lg::latency_histogram h;
    std::mt19937_64 rng(3);
    std::vector<std::uint64_t> values;
    for (int i = 0; i < 100000; ++i) {
        const std::uint64_t v = 1000 + rng() % 5'000'000;  // 1 us .. 5 ms
        values.push_back(v);
        h.record(v);
    }
    std::sort(values.begin(), values.end());
    for (double q : {0.5, 0.9, 0.99, 0.999}) {
        const auto exact = values[static_cast<std::size_t>(q * static_cast<double>(values.size() - 1))];
        const auto got = h.percentile(q);
        INFO(q);
        CHECK(got >= exact);
        CHECK(static_cast<double>(got) <= static_cast<double>(exact) * (1.0 + 1.0 / 64) + 1);
    }
    CHECK(h.count() == values.size());
    CHECK(h.max() == values.back());
    CHECK(h.percentile(1.0) == values.back());

    lg::latency_histogram small;
    for (std::uint64_t v = 0; v < 128; ++v) small.record(v);  // exact below 128 ns
    CHECK(small.percentile(0.5) == 63);
    lg::latency_histogram merged;
    merged.merge(h);
    merged.merge(small);
    CHECK(merged.count() == h.count() + 128);
    CHECK(lg::latency_histogram{}.percentile(0.99) == 0);
}

TEST_CASE("loadgen framing: client frames are masked, server frames parse") {
    std::string out;
    lg::append_client_frame(out, lg::ws_opcode::binary, "head", "body", 0x11223344u);
    REQUIRE(out.size() == 2 + 4 + 8);
    CHECK(static_cast<std::uint8_t>(out[0]) == 0x82);
    CHECK(static_cast<std::uint8_t>(out[1]) == (0x80 | 8));
    std::string unmasked;
    for (std::size_t i = 0; i < 8; ++i) unmasked.push_back(static_cast<char>(out[6 + i] ^ out[2 + (i & 3)]));
    CHECK(unmasked == "headbody");

    for (std::size_t n : {0u, 125u, 126u, 65535u, 65536u}) {
        std::string payload(n, 'z');
        std::string frame;
        frame.push_back(static_cast<char>(0x82));
        if (n < 126) {
            frame.push_back(static_cast<char>(n));
        } else if (n <= 0xffff) {
            frame.push_back(126);
            frame.push_back(static_cast<char>(n >> 8));
            frame.push_back(static_cast<char>(n));
        } else {
            frame.push_back(127);
            for (int s = 56; s >= 0; s -= 8) frame.push_back(static_cast<char>(static_cast<std::uint64_t>(n) >> s));
        }
        frame += payload;
        lg::ws_frame f;
        INFO(n);
        REQUIRE(lg::parse_server_frame(frame, 1 << 20, f) == lg::parse_result::complete);
        CHECK(f.payload.size() == n);
        CHECK(f.size == frame.size());
        CHECK(lg::parse_server_frame(std::string_view(frame).substr(0, frame.size() - 1), 1 << 20, f) ==
              lg::parse_result::need_more);
        CHECK(lg::parse_server_frame(frame, n == 0 ? 1 : n - 1, f) ==
              (n == 0 ? lg::parse_result::complete : lg::parse_result::too_large));
    }
}

TEST_CASE("loadgen framing: protocol violations by a server are refused") {
    lg::ws_frame f;
    CHECK(lg::parse_server_frame(std::string("\x82\x85\x01\x02\x03\x04hello", 11), 100, f) ==
          lg::parse_result::protocol_error);  // masked
    CHECK(lg::parse_server_frame(std::string("\xc2\x00", 2), 100, f) == lg::parse_result::protocol_error);  // RSV1
    CHECK(lg::parse_server_frame(std::string("\x83\x00", 2), 100, f) == lg::parse_result::protocol_error);  // opcode 3
    CHECK(lg::parse_server_frame(std::string("\x09\x00", 2), 100, f) ==
          lg::parse_result::protocol_error);  // fragmented ping
    CHECK(lg::parse_server_frame(std::string("\x89\x7e\x00\x7e", 4), 1000, f) ==
          lg::parse_result::protocol_error);  // control frame over 125
    CHECK(lg::upgrade_status("HTTP/1.1 101 Switching Protocols") == 101);
    CHECK(lg::upgrade_status("HTTP/1.1 401 Unauthorized") == 401);
    CHECK(lg::upgrade_status("HTTP/1.0 101 x") == 0);
    CHECK(lg::upgrade_status("HTTP/1.1 1x1") == 0);
    CHECK(lg::upgrade_status("") == 0);
}
