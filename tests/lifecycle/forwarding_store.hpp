// A session_store that forwards every operation to another one: the base of
// the tests' failure-injecting stores, which override what they change.
#pragma once

#include <gatehouse/session/session_store.hpp>

#include <memory>
#include <utility>

namespace gatehouse::test {

class forwarding_store : public session::session_store {
public:
    explicit forwarding_store(std::shared_ptr<session::session_store> inner) : inner_(std::move(inner)) {}

    void create(session::session_record record, completion<session::session_record> done) override {
        inner_->create(std::move(record), std::move(done));
    }
    void load(std::string_view session_id, completion<session::session_record> done) override {
        inner_->load(session_id, std::move(done));
    }
    void touch(std::string_view session_id, done_completion done) override {
        inner_->touch(session_id, std::move(done));
    }
    void update(session::session_record record, completion<session::session_record> done) override {
        inner_->update(std::move(record), std::move(done));
    }
    void revoke(std::string_view session_id, done_completion done) override {
        inner_->revoke(session_id, std::move(done));
    }
    void revoke_account(std::string_view account_id, completion<std::size_t> done) override {
        inner_->revoke_account(account_id, std::move(done));
    }
    void list_account(std::string_view account_id, completion<std::vector<session::session_record>> done) override {
        inner_->list_account(account_id, std::move(done));
    }
    void issue_reconnect_token(std::string_view session_id, std::chrono::milliseconds window,
                               completion<session::reconnect_token> done) override {
        inner_->issue_reconnect_token(session_id, window, std::move(done));
    }
    void consume_reconnect_token(std::string_view token, completion<session::session_record> done) override {
        inner_->consume_reconnect_token(token, std::move(done));
    }
    session::session_timing timing() const noexcept override { return inner_->timing(); }

protected:
    const std::shared_ptr<session::session_store> inner_;
};

}  // namespace gatehouse::test
