// Helpers shared by the auth tests: fixture files, token assembly, keys.
#pragma once

#include <gatehouse/auth/detail/base64url.hpp>
#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/auth/keys.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace gatehouse::test::auth {

namespace a = gatehouse::auth;

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline std::string fixture_path(const std::string& name) {
    return std::string(GATEHOUSE_SOURCE_DIR) + "/tests/auth/fixtures/" + name;
}
inline std::string fixture(const std::string& name) { return read_file(fixture_path(name)); }

inline const nlohmann::json& tokens_fixture() {
    static const nlohmann::json doc = nlohmann::json::parse(fixture("tokens.json"));
    return doc;
}

inline std::string unhex(std::string_view hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
    return out;
}

/// The 64-byte HMAC secret of the fixtures.
inline std::string fixture_hmac_secret() {
    auto hex = fixture("keys/hmac.secret");
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r')) hex.pop_back();
    return unhex(hex);
}

inline std::string b64(std::string_view s) { return a::detail::base64url_encode(s); }

inline std::string b64_decode(std::string_view s) {
    std::string out;
    if (a::detail::base64url_decode(s, out)) throw std::runtime_error("bad base64url in a test");
    return out;
}

inline a::key_ptr hmac_key(std::string_view secret, std::string kid, a::algorithm_set allowed = {}) {
    a::key_ptr k;
    if (auto ec = a::make_hmac_key(secret, std::move(kid), allowed, k)) throw std::runtime_error(ec.message());
    return k;
}

inline a::key_ptr pem_key(const std::string& file, std::string kid, a::algorithm_set allowed = {}) {
    a::key_ptr k;
    if (auto ec = a::load_public_key_pem(fixture("keys/" + file), std::move(kid), allowed, k))
        throw std::runtime_error(file + ": " + ec.message());
    return k;
}

inline a::signing_key_ptr private_key(const std::string& file, std::string kid) {
    a::signing_key_ptr k;
    if (auto ec = a::load_private_key_pem(fixture("keys/" + file), std::move(kid), k))
        throw std::runtime_error(file + ": " + ec.message());
    return k;
}

inline a::signing_key_ptr hmac_signer(std::string_view secret, std::string kid) {
    a::signing_key_ptr k;
    if (auto ec = a::make_hmac_signing_key(secret, std::move(kid), k)) throw std::runtime_error(ec.message());
    return k;
}

/// "<b64 header>.<b64 payload>" from raw JSON texts.
inline std::string signing_input(std::string_view header_json, std::string_view payload_json) {
    return b64(header_json) + "." + b64(payload_json);
}

/// Appends "." and the signature of `input` made with `key`.
inline std::string signed_token(std::string input, const a::signing_key& key, a::jwt_algorithm alg) {
    std::string sig;
    if (auto ec = a::sign_jws(key, alg, input, sig)) throw std::runtime_error(ec.message());
    return input + "." + sig;
}

inline a::key_set make_set(std::initializer_list<a::key_ptr> keys) {
    a::key_set s;
    for (const auto& k : keys)
        if (auto ec = s.add(k)) throw std::runtime_error(ec.message());
    return s;
}

}  // namespace gatehouse::test::auth
