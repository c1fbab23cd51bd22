// JWT verification speed per algorithm, beside the raw OpenSSL EVP check of
// the same signature with the same key, measured in the same process. The
// ratio is the cost of everything JWT adds: splitting and base64url-decoding
// the token, parsing header and claims as JSON, key selection, claim checks
// and building the identity. Also: API keys, the Authorization header
// parser and the whole validator_chain path with a revocation check.
//
//   cmake --build build --target bench_auth && build/benchmarks/bench_auth
//   (benchmarks/run_auth.sh does that with a pinned CPU and repetitions)
//
// Keys are generated in-process (RSA 2048, P-256/384/521, Ed25519, a 64-byte
// HMAC secret) and go through the same PEM loaders a host uses.
#include <gatehouse/auth/api_key_validator.hpp>
#include <gatehouse/auth/authorization_header.hpp>
#include <gatehouse/auth/detail/base64url.hpp>
#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/validator_chain.hpp>

#include <benchmark/benchmark.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace a = gatehouse::auth;
using A = a::jwt_algorithm;

namespace {

constexpr long long now_s = 1700000000;

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return s;
}

EVP_PKEY* generate(const char* type, const char* curve_or_null, unsigned rsa_bits = 0) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    EVP_PKEY* key = nullptr;
    if (ctx == nullptr || EVP_PKEY_keygen_init(ctx) != 1) throw std::runtime_error("keygen init");
    if (curve_or_null != nullptr) {
        OSSL_PARAM params[2] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(curve_or_null), 0),
            OSSL_PARAM_construct_end()};
        if (EVP_PKEY_CTX_set_params(ctx, params) != 1) throw std::runtime_error("curve");
    }
    if (rsa_bits != 0 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, static_cast<int>(rsa_bits)) != 1)
        throw std::runtime_error("rsa bits");
    if (EVP_PKEY_generate(ctx, &key) != 1) throw std::runtime_error("keygen");
    EVP_PKEY_CTX_free(ctx);
    return key;
}

struct algorithm_case {
    A alg;
    std::string token;
    std::string signing_input;
    std::string signature;  // as EVP wants it: DER for ECDSA
    EVP_PKEY* raw_key = nullptr;  // for the raw baseline; nullptr for HMAC
};

struct bench_state {
    std::string secret = std::string(64, '\x42');
    std::unique_ptr<a::jwt_validator> validator;
    std::map<A, algorithm_case> cases;
    std::vector<EVP_PKEY*> owned;

    bench_state() {
        a::jwt_options o;
        o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(now_s)); };
        o.issuers = {"https://issuer.example"};
        o.audiences = {"game"};
        const nlohmann::json claims = {{"sub", "account-8d3f2c"},
                                       {"session_key", "6f9619ff-8b86-4d11-b42d-00c04fc964ff"},
                                       {"roles", {"player", "beta"}},
                                       {"permissions", {"chat:write", "profile:read", "match:join"}},
                                       {"iss", "https://issuer.example"},
                                       {"aud", "game"},
                                       {"jti", "c0a8017e-7f00-4a1b-9e1d-3b2f1a2b3c4d"},
                                       {"iat", now_s},
                                       {"nbf", now_s},
                                       {"exp", now_s + 3600}};

        struct key_spec {
            const char* kid;
            EVP_PKEY* pkey;
            std::vector<A> algs;
        };
        std::vector<key_spec> specs = {
            {"rsa", generate("RSA", nullptr, 2048), {A::rs256, A::rs384, A::rs512, A::ps256, A::ps384, A::ps512}},
            {"p256", generate("EC", "P-256"), {A::es256}},
            {"p384", generate("EC", "P-384"), {A::es384}},
            {"p521", generate("EC", "P-521"), {A::es512}},
            {"ed", generate("ED25519", nullptr), {A::eddsa}},
        };
        a::key_set keys;
        a::key_ptr hk;
        if (a::make_hmac_key(secret, "hs", {}, hk) || keys.add(hk)) throw std::runtime_error("hmac key");
        a::signing_key_ptr hs_signer;
        if (a::make_hmac_signing_key(secret, "hs", hs_signer)) throw std::runtime_error("hmac signer");
        for (const A alg : {A::hs256, A::hs384, A::hs512}) add_case(alg, *hs_signer, claims, nullptr);

        for (auto& spec : specs) {
            owned.push_back(spec.pkey);
            BIO* pub = BIO_new(BIO_s_mem());
            BIO* priv = BIO_new(BIO_s_mem());
            PEM_write_bio_PUBKEY(pub, spec.pkey);
            PEM_write_bio_PrivateKey(priv, spec.pkey, nullptr, nullptr, 0, nullptr, nullptr);
            a::key_ptr vk;
            a::signing_key_ptr sk;
            if (a::load_public_key_pem(bio_text(pub), spec.kid, {}, vk) || keys.add(vk))
                throw std::runtime_error("public key");
            if (a::load_private_key_pem(bio_text(priv), spec.kid, sk)) throw std::runtime_error("private key");
            for (const A alg : spec.algs) add_case(alg, *sk, claims, spec.pkey);
        }
        validator = std::make_unique<a::jwt_validator>(o, std::move(keys));
        // Every token must validate, or the figures mean nothing.
        for (const auto& [alg, c] : cases) {
            a::identity id;
            if (auto ec = validator->validate(c.token, id)) {
                std::fprintf(stderr, "%s token does not validate: %s\n", std::string(a::to_string(alg)).c_str(),
                             ec.message().c_str());
                std::abort();
            }
            if (raw_verify(c) != 1) {
                std::fprintf(stderr, "%s raw verify fails\n", std::string(a::to_string(alg)).c_str());
                std::abort();
            }
        }
    }
    ~bench_state() {
        for (auto* k : owned) EVP_PKEY_free(k);
    }

    void add_case(A alg, const a::signing_key& key, const nlohmann::json& claims, EVP_PKEY* raw) {
        algorithm_case c;
        c.alg = alg;
        if (a::sign_jwt(claims, key, alg, c.token)) throw std::runtime_error("sign");
        const auto dot = c.token.rfind('.');
        c.signing_input = c.token.substr(0, dot);
        std::string jose;
        if (a::detail::base64url_decode(std::string_view(c.token).substr(dot + 1), jose))
            throw std::runtime_error("b64");
        c.signature = jose;
        if (alg == A::es256 || alg == A::es384 || alg == A::es512) {
            // The raw baseline verifies OpenSSL's own DER form.
            const std::size_t half = jose.size() / 2;
            BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(jose.data()), static_cast<int>(half), nullptr);
            BIGNUM* s =
                BN_bin2bn(reinterpret_cast<const unsigned char*>(jose.data()) + half, static_cast<int>(half), nullptr);
            ECDSA_SIG* sig = ECDSA_SIG_new();
            ECDSA_SIG_set0(sig, r, s);
            unsigned char* der = nullptr;
            const int n = i2d_ECDSA_SIG(sig, &der);
            c.signature.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
            OPENSSL_free(der);
            ECDSA_SIG_free(sig);
        }
        c.raw_key = raw;
        cases[alg] = std::move(c);
    }

    static const EVP_MD* md_for(A alg) {
        static EVP_MD* const s256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
        static EVP_MD* const s384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
        static EVP_MD* const s512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
        switch (alg) {
        case A::hs256: case A::rs256: case A::ps256: case A::es256: return s256;
        case A::hs384: case A::rs384: case A::ps384: case A::es384: return s384;
        case A::eddsa: return nullptr;
        default: return s512;
        }
    }

    // The raw check a careful EVP user writes: one EVP_MD_CTX per call,
    // digests fetched once, the signature already in OpenSSL's format.
    int raw_verify(const algorithm_case& c) const {
        const auto* input = reinterpret_cast<const unsigned char*>(c.signing_input.data());
        const auto* sig = reinterpret_cast<const unsigned char*>(c.signature.data());
        if (c.raw_key == nullptr) return raw_hmac(c) ? 1 : 0;
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX* pctx = nullptr;
        int ok = EVP_DigestVerifyInit(ctx, &pctx, md_for(c.alg), nullptr, c.raw_key);
        if (ok == 1 && (c.alg == A::ps256 || c.alg == A::ps384 || c.alg == A::ps512)) {
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
        }
        if (ok == 1) ok = EVP_DigestVerify(ctx, sig, c.signature.size(), input, c.signing_input.size());
        EVP_MD_CTX_free(ctx);
        return ok;
    }

    // HMAC baseline: a keyed EVP_MAC context prepared once, duplicated per
    // call (the fastest EVP pattern; what the validator does too).
    bool raw_hmac(const algorithm_case& c) const {
        static std::map<A, EVP_MAC_CTX*> keyed;
        auto& ctx = keyed[c.alg];
        if (ctx == nullptr) {
            EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
            ctx = EVP_MAC_CTX_new(mac);
            EVP_MAC_free(mac);
            OSSL_PARAM params[2] = {
                OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>(EVP_MD_get0_name(md_for(c.alg))), 0),
                OSSL_PARAM_construct_end()};
            EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), params);
        }
        EVP_MAC_CTX* call = EVP_MAC_CTX_dup(ctx);
        unsigned char out[EVP_MAX_MD_SIZE];
        std::size_t n = 0;
        EVP_MAC_update(call, reinterpret_cast<const unsigned char*>(c.signing_input.data()), c.signing_input.size());
        EVP_MAC_final(call, out, &n, sizeof out);
        EVP_MAC_CTX_free(call);
        return n == c.signature.size() && CRYPTO_memcmp(out, c.signature.data(), n) == 0;
    }
};

bench_state& state() {
    static bench_state s;
    return s;
}

void BM_jwt_validate(benchmark::State& st, A alg) {
    const auto& c = state().cases.at(alg);
    const auto& v = *state().validator;
    for (auto _ : st) {
        a::identity id;
        auto ec = v.validate(c.token, id);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(id);
    }
    st.SetItemsProcessed(st.iterations());
}

void BM_raw_evp_verify(benchmark::State& st, A alg) {
    const auto& c = state().cases.at(alg);
    for (auto _ : st) {
        int ok = state().raw_verify(c);
        benchmark::DoNotOptimize(ok);
    }
    st.SetItemsProcessed(st.iterations());
}

void BM_api_key_validate(benchmark::State& st) {
    static const auto v = [] {
        auto x = std::make_unique<a::api_key_validator>();
        for (int i = 0; i < 10000; ++i) {
            a::identity id;
            id.subject = "service-" + std::to_string(i);
            id.roles = {"service"};
            (void)x->add("gh_live_" + std::to_string(i) + "_0123456789abcdef0123456789abcdef", id);
        }
        return x;
    }();
    const std::string key = "gh_live_4242_0123456789abcdef0123456789abcdef";
    for (auto _ : st) {
        a::identity id;
        auto ec = v->validate(key, id);
        benchmark::DoNotOptimize(ec);
    }
    st.SetItemsProcessed(st.iterations());
}

void BM_parse_authorization_header(benchmark::State& st) {
    const std::string header = "Bearer " + state().cases.at(A::hs256).token;
    for (auto _ : st) {
        a::credential c;
        auto ec = a::parse_authorization_header(header, c);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(c);
    }
    st.SetItemsProcessed(st.iterations());
}

// What the gateway runs at an upgrade: header -> chain -> JWT -> revocation.
void BM_chain_bearer_with_revocation(benchmark::State& st, A alg) {
    struct non_owning final : a::token_validator {
        a::jwt_validator* v;
        explicit non_owning(a::jwt_validator* p) : v(p) {}
        void async_validate(const a::credential& c, completion done) override { v->async_validate(c, std::move(done)); }
    };
    a::validator_chain chain;
    chain.set_validator(a::credential_kind::bearer, std::make_shared<non_owning>(state().validator.get()));
    auto revocations = std::make_shared<a::memory_revocation_list>();
    for (int i = 0; i < 10000; ++i) (void)revocations->revoke({a::revocation_scope::token, "jti-" + std::to_string(i)});
    chain.set_revocation_list(revocations);
    const std::string header = "Bearer " + state().cases.at(alg).token;
    for (auto _ : st) {
        a::credential c;
        (void)a::parse_authorization_header(header, c);
        std::error_code result;
        chain.async_validate(c, [&result](std::error_code ec, a::identity) { result = ec; });
        benchmark::DoNotOptimize(result);
    }
    st.SetItemsProcessed(st.iterations());
}

// Prints the usual table, then the JWT/raw ratio per algorithm.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            if (r.error_occurred) continue;
            // With --benchmark_repetitions the median stands for the run.
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
            // CPU time: the machine may be shared; wall time would charge us for
            // other processes.
            const double seconds_per_item = r.GetAdjustedCPUTime() / 1e9;  // ns by default
            per_second_[r.run_name.str()] = 1.0 / seconds_per_item;
        }
    }
    void Finalize() override {
        ConsoleReporter::Finalize();
        std::printf("\n%-8s %14s %14s %10s\n", "alg", "jwt verify/s", "raw EVP/s", "overhead");
        for (std::size_t i = 0; i < a::jwt_algorithm_count; ++i) {
            const std::string alg(a::to_string(static_cast<A>(i)));
            const auto jwt = per_second_.find("BM_jwt_validate/" + alg);
            const auto raw = per_second_.find("BM_raw_evp_verify/" + alg);
            if (jwt == per_second_.end() || raw == per_second_.end()) continue;
            std::printf("%-8s %14.0f %14.0f %9.1f%%\n", alg.c_str(), jwt->second, raw->second,
                        (raw->second / jwt->second - 1.0) * 100.0);
        }
        std::printf("(CPU time per verification, one thread; overhead = extra time relative to the raw signature check)\n");
    }

private:
    std::map<std::string, double> per_second_;
};

}  // namespace

int main(int argc, char** argv) {
    state();  // key generation outside any timing
    for (std::size_t i = 0; i < a::jwt_algorithm_count; ++i) {
        const auto alg = static_cast<A>(i);
        const std::string name(a::to_string(alg));
        benchmark::RegisterBenchmark(("BM_jwt_validate/" + name).c_str(), BM_jwt_validate, alg);
        benchmark::RegisterBenchmark(("BM_raw_evp_verify/" + name).c_str(), BM_raw_evp_verify, alg);
    }
    benchmark::RegisterBenchmark("BM_chain_bearer_with_revocation/HS256", BM_chain_bearer_with_revocation, A::hs256);
    benchmark::RegisterBenchmark("BM_chain_bearer_with_revocation/ES256", BM_chain_bearer_with_revocation, A::es256);
    benchmark::RegisterBenchmark("BM_api_key_validate", BM_api_key_validate);
    benchmark::RegisterBenchmark("BM_parse_authorization_header", BM_parse_authorization_header);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}
