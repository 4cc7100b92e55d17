// Catch2 runner for the integration tests.

#include <csignal>
#include <iostream>

#include "../support/catch_session.hpp"
#include "harness.hpp"

int main(int argc, char** argv) {
    // A peer closing early must fail a write with EPIPE, not kill the test run.
    std::signal(SIGPIPE, SIG_IGN);
    const int result = fulcrum::test::run_catch_session(argc, argv);
    // Children's sanitizer reports fail the test case they belong to; one found while no
    // test case was running (printed then) fails the run.
    if (const int orphans = fulcrum::test::unattributed_sanitizer_reports(); orphans > 0) {
        std::cerr << orphans << " sanitizer report(s) outside any test case\n";
        return result != 0 ? result : 1;
    }
    return result;
}
