#include <gatehouse/protocol.hpp>

#include <doctest/doctest.h>

#include <array>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace p = gatehouse::protocol;
using p::protocol_errc;

namespace {
p::request_header sample_request() {
    p::request_header h;
    h.flags = p::message_flags::event | p::message_flags::binary;
    h.channel = 0xabcd;
    h.sequence = 0x01020304;
    h.service = p::guid_from_string("a1b2c3d4-e5f6-7890-abcd-ef1234567890");
    h.message_id = 0x1122334455667788ull;
    return h;
}
}  // namespace

TEST_CASE("header: truncated request frames of every length 0..30") {
    std::array<std::uint8_t, 31> full{};
    p::encode_header(sample_request(), full.data());
    for (std::size_t n = 0; n < 31; ++n) {
        INFO(n);
        // Exactly n bytes in a heap block of n bytes: ASan catches any read past it.
        std::unique_ptr<std::uint8_t[]> exact(new std::uint8_t[n == 0 ? 1 : n]);
        std::copy(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n), exact.get());
        p::frame_view f;
        const auto ec = p::decode_frame(p::bytes_view(exact.get(), n), f);
        CHECK(ec == (n == 0 ? protocol_errc::empty_frame : protocol_errc::truncated_request_header));
        p::request_header h;
        p::bytes_view payload;
        CHECK(p::decode_request(p::bytes_view(exact.get(), n), h, payload));
    }
    p::frame_view f;
    CHECK_FALSE(p::decode_frame(p::bytes_view(full.data(), 31), f));
    CHECK(f.payload.empty());
}

TEST_CASE("header: truncated response frames of every length 0..15") {
    p::response_header r;
    r.channel = 7;
    r.sequence = 9;
    r.message_id = 11;
    r.code = p::response_code::service_not_found;
    std::array<std::uint8_t, 16> full{};
    p::encode_header(r, full.data());
    for (std::size_t n = 1; n < 16; ++n) {
        INFO(n);
        std::unique_ptr<std::uint8_t[]> exact(new std::uint8_t[n]);
        std::copy(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n), exact.get());
        p::frame_view f;
        CHECK(p::decode_frame(p::bytes_view(exact.get(), n), f) == protocol_errc::truncated_response_header);
    }
    p::frame_view f;
    REQUIRE_FALSE(p::decode_frame(p::bytes_view(full.data(), 16), f));
    CHECK(f.response() == r);
}

TEST_CASE("header: bit 0x40 alone decides the header kind") {
    for (int flags = 0; flags < 256; ++flags) {
        INFO(flags);
        std::array<std::uint8_t, 31> buf{};
        buf[0] = static_cast<std::uint8_t>(flags);
        p::frame_view f;
        REQUIRE_FALSE(p::decode_frame(p::bytes_view(buf.data(), buf.size()), f));
        const bool response = (flags & 0x40) != 0;
        CHECK(f.is_response() == response);
        CHECK(f.payload.size() == (response ? 15u : 0u));
        CHECK(p::to_byte(f.flags) == flags);  // flags are reported as sent, reserved bits included
    }
}

TEST_CASE("header: request/response-only decoders refuse the other kind") {
    std::vector<std::uint8_t> req;
    p::append_frame(req, sample_request(), std::string_view("{}"));
    std::vector<std::uint8_t> resp;
    p::append_frame(resp, p::response_header{}, std::string_view("{}"));

    p::request_header rh;
    p::response_header sh;
    p::bytes_view payload;
    CHECK(p::decode_request(resp, rh, payload) == protocol_errc::not_a_request);
    CHECK(p::decode_response(req, sh, payload) == protocol_errc::not_a_response);
    CHECK(p::decode_request(p::bytes_view{}, rh, payload) == protocol_errc::empty_frame);
    CHECK(p::decode_response(p::bytes_view{}, sh, payload) == protocol_errc::empty_frame);
    REQUIRE_FALSE(p::decode_request(req, rh, payload));
    CHECK(rh == sample_request());
    CHECK(payload.as_chars() == "{}");
    REQUIRE_FALSE(p::decode_response(resp, sh, payload));
    CHECK(sh == p::response_header{});
    CHECK(payload.as_chars() == "{}");
}

TEST_CASE("header: bounded encoders report a short buffer") {
    std::error_code ec;
    std::array<std::uint8_t, 30> small{};
    CHECK(p::encode_header(sample_request(), p::mutable_bytes(small), ec) == 0);
    CHECK(ec == protocol_errc::buffer_too_small);
    std::array<std::uint8_t, 15> smaller{};
    CHECK(p::encode_header(p::response_header{}, p::mutable_bytes(smaller), ec) == 0);
    CHECK(ec == protocol_errc::buffer_too_small);

    std::array<std::uint8_t, 31> enough{};
    CHECK(p::encode_header(sample_request(), p::mutable_bytes(enough), ec) == 31);
    CHECK_FALSE(ec);
    std::array<std::uint8_t, 16> exact{};
    CHECK(p::encode_header(p::response_header{}, p::mutable_bytes(exact), ec) == 16);
    CHECK_FALSE(ec);
}

TEST_CASE("header: a response header always carries 0x40") {
    p::response_header r;
    r.flags = p::message_flags::binary;  // caller forgot the Response bit
    std::array<std::uint8_t, 16> out{};
    p::encode_header(r, out.data());
    CHECK(out[0] == 0x41);
}

TEST_CASE("header: boundary values round-trip") {
    for (std::uint64_t id : {0ull, 1ull, 0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull}) {
        for (std::uint16_t channel : {std::uint16_t{0}, std::uint16_t{1000}, std::uint16_t{1001}, std::uint16_t{65535}}) {
            for (std::uint32_t seq : {0u, 1u, 0xffffffffu}) {
                p::request_header h{p::message_flags::none, channel, seq, p::guid::broadcast(), id};
                std::array<std::uint8_t, 31> buf{};
                p::encode_header(h, buf.data());
                p::frame_view f;
                REQUIRE_FALSE(p::decode_frame(p::bytes_view(buf.data(), buf.size()), f));
                CHECK(f.request() == h);

                p::response_header r{p::message_flags::response | p::message_flags::meta, channel, seq, id,
                                     p::response_code::shortcut_revoked};
                std::array<std::uint8_t, 16> rb{};
                p::encode_header(r, rb.data());
                REQUIRE_FALSE(p::decode_frame(p::bytes_view(rb.data(), rb.size()), f));
                CHECK(f.response() == r);
            }
        }
    }
}

TEST_CASE("header: random frames round-trip, payload is a view into the input") {
    std::mt19937_64 rng(1234);
    for (int i = 0; i < 5000; ++i) {
        const bool response = (rng() & 1) != 0;
        std::vector<std::uint8_t> payload(rng() % 64);
        for (auto& b : payload) b = static_cast<std::uint8_t>(rng());
        std::string frame;  // std::string as the container works as well
        p::frame_view f;
        if (response) {
            p::response_header r{static_cast<p::message_flags>(rng() | 0x40), static_cast<std::uint16_t>(rng()),
                                 static_cast<std::uint32_t>(rng()), rng(), static_cast<p::response_code>(rng())};
            p::append_frame(frame, r, payload);
            REQUIRE_FALSE(p::decode_frame(frame, f));
            CHECK(f.response() == r);
            CHECK(f.payload.data() == reinterpret_cast<const std::uint8_t*>(frame.data()) + 16);
        } else {
            p::request_header h{static_cast<p::message_flags>(rng() & ~0x40ull), static_cast<std::uint16_t>(rng()),
                                static_cast<std::uint32_t>(rng()), {}, rng()};
            for (auto& b : h.service.bytes) b = static_cast<std::uint8_t>(rng());
            p::append_frame(frame, h, payload);
            REQUIRE_FALSE(p::decode_frame(frame, f));
            CHECK(f.request() == h);
            CHECK(f.payload.data() == reinterpret_cast<const std::uint8_t*>(frame.data()) + 31);
        }
        CHECK(std::equal(f.payload.begin(), f.payload.end(), payload.begin(), payload.end()));
    }
}

TEST_CASE("header: encoding is usable in constant expressions") {
    constexpr auto encoded = [] {
        std::array<std::uint8_t, 31> out{};
        p::request_header h;
        h.channel = 0x0102;
        h.message_id = 0x0a0b;
        p::encode_header(h, out.data());
        return out;
    }();
    static_assert(encoded[1] == 0x01 && encoded[2] == 0x02, "channel is big-endian");
    static_assert(encoded[29] == 0x0a && encoded[30] == 0x0b, "message id is big-endian");
    CHECK(encoded[0] == 0);
}
