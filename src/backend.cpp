#include "fulcrum/backend.hpp"

namespace fulcrum {

Pool::Pool(const ServiceConfig& service) {
    backends.reserve(service.backends.size());
    for (const auto& cfg : service.backends) backends.push_back(std::make_shared<Backend>(cfg));
}

}  // namespace fulcrum
