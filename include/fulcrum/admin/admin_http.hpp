#pragma once
// cpp-httplib's server made safe to face hostile clients: what an admin connection may
// cost is bounded before httplib sees a byte of it.
//   - Connections held (being served or waiting for a request thread) are capped; past
//     the cap a new one gets 503 and is closed at once, so idle clients cannot take the
//     descriptors the data path needs.
//   - One request per connection, with a deadline for all of it: a request line, a
//     head, a header count or a body over the limits (RequestLimits) gets 414, 431, 413
//     or 411, and a request not complete by the deadline 408; then the connection closes.
//   - httplib reads the request through a stream that ends where the head says the
//     request ends, so its parsers never see more than the limits allow.

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>

#include "fulcrum/admin/request_head.hpp"

namespace fulcrum {

class AdminHttp : public httplib::Server {
public:
    struct Limits {
        std::size_t request_threads = 4;
        std::size_t max_connections = 16;                  // held at once, request threads included
        std::chrono::milliseconds request_timeout{2000};   // whole request, once a thread has it
        std::chrono::milliseconds response_timeout{5000};  // whole response
        RequestLimits request;
    };

    explicit AdminHttp(Limits limits);

    // httplib keeps its listening socket protected: this raises the backlog (httplib's
    // is 5) and closes the socket of a server that never ran.
    bool raise_backlog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }
    void close_unused_socket();
    // A binary upgrade, new process: serve on the socket the old one handed over.
    void adopt_listening_socket(int fd) { svr_sock_ = fd; }
    int listening_socket() const { return svr_sock_; }
    // A binary upgrade, old process: the listening socket goes on in the new process. The
    // accept loop lets go of it at its next turn (within the idle interval) and ends;
    // httplib's stop() must not run, since it would shut down the socket both accept on.
    void give_up_listening_socket() { give_up_ = true; }

private:
    // Called by httplib for every accepted connection, on a request thread, or on the
    // accept thread for a connection refused at the cap.
    bool process_and_close_socket(socket_t sock) override;
    // On the accept thread, each turn of its loop.
    void release_if_given_up();

    const Limits limits_;
    std::atomic<bool> give_up_{false};
};

}  // namespace fulcrum
