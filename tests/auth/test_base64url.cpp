// Strict base64url and the JOSE -> DER conversion of ECDSA signatures.
#include <gatehouse/auth/detail/base64url.hpp>
#include <gatehouse/auth/detail/openssl.hpp>

#include <doctest/doctest.h>

#include <openssl/ec.h>

#include <string>
#include <vector>

namespace a = gatehouse::auth;
namespace d = gatehouse::auth::detail;

TEST_CASE("base64url: RFC 4648 test vectors, without padding, both directions") {
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"}, {"\xfb\xff\xfe", "-__-"}};
    for (const auto& vector : vectors) {
        const std::string plain = vector.first;
        const std::string encoded = vector.second;
        INFO(encoded);
        CHECK(d::base64url_encode(plain) == encoded);
        std::string out;
        CHECK_FALSE(d::base64url_decode(encoded, out));
        CHECK(out == plain);
    }
}

TEST_CASE("base64url: exactly one accepted spelling") {
    std::string out = "x";
    CHECK(d::base64url_decode("Zg==", out) == a::auth_errc::base64url_padding);
    CHECK(out.empty());
    CHECK(d::base64url_decode("Zm+v", out) == a::auth_errc::base64url_invalid_character);
    CHECK(d::base64url_decode("Zm/v", out) == a::auth_errc::base64url_invalid_character);
    CHECK(d::base64url_decode("Zm9 v", out) == a::auth_errc::base64url_invalid_character);
    CHECK(d::base64url_decode(std::string_view("Zm\0v", 4), out) == a::auth_errc::base64url_invalid_character);
    CHECK(d::base64url_decode("Zm9vY", out) == a::auth_errc::base64url_bad_length);
    CHECK(d::base64url_decode("Zh", out) == a::auth_errc::base64url_noncanonical);   // "f" is Zg
    CHECK(d::base64url_decode("Zm8", out) == std::error_code{});
    CHECK(out == "fo");
    CHECK(d::base64url_decode("Zm9", out) == a::auth_errc::base64url_noncanonical);
    CHECK(d::base64url_decode("Zm-", out) == a::auth_errc::base64url_noncanonical);  // low bits of '-' (62) set
    // Every byte value round-trips.
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (std::size_t n = 0; n <= all.size(); n += 37) {
        std::string back;
        CHECK_FALSE(d::base64url_decode(d::base64url_encode(all.substr(0, n)), back));
        CHECK(back == all.substr(0, n));
    }
}

TEST_CASE("ECDSA: JOSE r||s to DER matches OpenSSL's own encoding") {
    // Values that exercise leading zeros, high bits and the long DER length form.
    for (const std::size_t half : {std::size_t{32}, std::size_t{48}, std::size_t{66}}) {
        for (int pattern = 0; pattern < 4; ++pattern) {
            std::vector<unsigned char> sig(2 * half);
            for (std::size_t i = 0; i < sig.size(); ++i) sig[i] = static_cast<unsigned char>(i * 7 + 1);
            if (pattern == 1) sig[0] = 0x80, sig[half] = 0xff;                      // high bit: needs 0x00
            if (pattern == 2) sig[0] = 0, sig[1] = 0, sig[half] = 0, sig[half + 1] = 0x01;  // leading zeros
            if (pattern == 3)
                for (std::size_t i = 0; i + 1 < half; ++i) sig[i] = 0;             // tiny r
            INFO("half " << half << " pattern " << pattern);
            unsigned char der[2 * (66 + 1) + 9];
            const std::size_t n = d::ecdsa_jose_to_der(sig.data(), half, der);

            ECDSA_SIG* ref = ECDSA_SIG_new();
            BIGNUM* r = BN_bin2bn(sig.data(), static_cast<int>(half), nullptr);
            BIGNUM* s = BN_bin2bn(sig.data() + half, static_cast<int>(half), nullptr);
            REQUIRE(ECDSA_SIG_set0(ref, r, s) == 1);
            unsigned char* ref_der = nullptr;
            const int ref_size = i2d_ECDSA_SIG(ref, &ref_der);
            REQUIRE(ref_size > 0);
            CHECK(std::string(reinterpret_cast<char*>(der), n) ==
                  std::string(reinterpret_cast<char*>(ref_der), static_cast<std::size_t>(ref_size)));
            OPENSSL_free(ref_der);
            ECDSA_SIG_free(ref);
        }
    }
}
