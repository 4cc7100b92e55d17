#pragma once
// The schema: which sections and keys a configuration has, how each value is checked,
// and the plain records of config.hpp they fill.

#include "fulcrum/config/config.hpp"
#include "fulcrum/config/reader.hpp"

namespace fulcrum::config_schema {

// Fills `config` from the root table; every problem goes to the section's errors.
void read_config(config_reader::Section& root, Config& config);

}  // namespace fulcrum::config_schema
