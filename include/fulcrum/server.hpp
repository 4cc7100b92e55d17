#pragma once
// Wires fulcrum together: one backend pool per service, the worker threads with their
// listeners, and the main loop that handles signals and waits for the workers to stop.

#include <memory>

#include "fulcrum/config.hpp"

namespace fulcrum {

class Server {
public:
    explicit Server(std::shared_ptr<const Config> config);
    // Binds every listener (throws std::runtime_error naming what failed), serves until
    // SIGINT or SIGTERM and the drain that follows, and returns the exit status.
    int run();

private:
    std::shared_ptr<const Config> config_;
};

}  // namespace fulcrum
