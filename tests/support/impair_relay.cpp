// impair_relay: an impaired point-to-point IPv4 link for fault tests, where the kernel has
// no sch_netem. It creates a TUN device in its network namespace ("outer"), moves itself
// into a new network namespace and creates a second one there ("inner"), gives each end
// its address and the other as its peer, and then copies IP packets between the two,
// delaying, dropping, duplicating and reordering them with a seeded PRNG.
//
// Nothing outlives it: the devices are not persistent and the namespace has no name, so
// both vanish when the relay exits, however it exits. Tests reach the inner namespace
// through /proc/<pid>/ns/net.
//
//   impair_relay --outer 198.18.0.1 --inner 198.18.0.2 [--mtu 1500] [--delay-ms 20]
//                [--loss 0.01] [--duplicate 0.01] [--reorder 0.05] [--seed 1]
//
// Prints "ready OUTER_DEVICE INNER_DEVICE" once both ends are up. On SIGTERM or SIGINT
// it prints its counts ("relay: forwarded=N dropped=N duplicated=N reordered=N") and
// exits 0. Exits 77 when the machine cannot give it TUN devices or a namespace (not
// root, no /dev/net/tun), 2 on bad arguments, 1 on other errors.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <queue>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int exit_unsupported = 77;

volatile std::sig_atomic_t stop_requested = 0;

void request_stop(int) {
    stop_requested = 1;
}

[[noreturn]] void fail(const std::string& what, int code = 1) {
    std::fprintf(stderr, "impair_relay: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(code);
}

struct Settings {
    in_addr outer{};
    in_addr inner{};
    int mtu = 1500;
    std::chrono::milliseconds delay{20};
    double loss = 0.01;
    double duplicate = 0.01;
    double reorder = 0.05;
    std::uint64_t seed = 1;
};

[[noreturn]] void usage(const std::string& problem) {
    std::fprintf(stderr,
                 "impair_relay: %s\nusage: impair_relay --outer ADDR --inner ADDR [--mtu N] "
                 "[--delay-ms N] [--loss P] [--duplicate P] [--reorder P] [--seed N]\n",
                 problem.c_str());
    std::exit(2);
}

Settings parse(int argc, char** argv) {
    std::map<std::string, std::string> options;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 == argc) usage(std::string("no value for ") + argv[i]);
        options[argv[i]] = argv[i + 1];
    }
    Settings settings;
    auto address = [&](const char* key, in_addr& out) {
        if (options.count(key) == 0 || inet_pton(AF_INET, options[key].c_str(), &out) != 1) {
            usage(std::string(key) + " needs an IPv4 address");
        }
        options.erase(key);
    };
    address("--outer", settings.outer);
    address("--inner", settings.inner);
    auto number = [&](const char* key, auto& out) {
        const auto it = options.find(key);
        if (it == options.end()) return;
        char* end = nullptr;
        const double value = std::strtod(it->second.c_str(), &end);
        if (*end != '\0' || value < 0) usage(std::string(key) + " needs a number >= 0");
        out = static_cast<std::remove_reference_t<decltype(out)>>(value);
        options.erase(it);
    };
    long delay_ms = settings.delay.count();
    number("--mtu", settings.mtu);
    number("--delay-ms", delay_ms);
    number("--loss", settings.loss);
    number("--duplicate", settings.duplicate);
    number("--reorder", settings.reorder);
    number("--seed", settings.seed);
    settings.delay = std::chrono::milliseconds(delay_ms);
    if (!options.empty()) usage("unknown option " + options.begin()->first);
    return settings;
}

// A non-persistent TUN device (raw IP packets, no extra header) in the current network
// namespace; returns its descriptor and sets `name` to the name the kernel gave it.
int open_tun(std::string& name) {
    const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fail("open /dev/net/tun", exit_unsupported);
    ifreq request{};
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::strncpy(request.ifr_name, "fimpair%d", IFNAMSIZ - 1);
    if (::ioctl(fd, TUNSETIFF, &request) < 0) fail("TUNSETIFF", exit_unsupported);
    name = request.ifr_name;
    return fd;
}

// Gives device `name` the address `local` with `peer` at the other end (a host route to
// the peer, nothing wider), the MTU, and brings it up.
void configure(const std::string& name, in_addr local, in_addr peer, int mtu) {
    const int control = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (control < 0) fail("socket");
    auto request_for = [&] {
        ifreq request{};
        std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
        return request;
    };
    auto set_address = [&](unsigned long command, in_addr value, const char* what) {
        ifreq request = request_for();
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr = value;
        std::memcpy(&request.ifr_addr, &address, sizeof address);
        if (::ioctl(control, command, &request) < 0) fail(name + ": " + what);
    };
    set_address(SIOCSIFADDR, local, "SIOCSIFADDR");
    set_address(SIOCSIFNETMASK, in_addr{INADDR_BROADCAST}, "SIOCSIFNETMASK");
    set_address(SIOCSIFDSTADDR, peer, "SIOCSIFDSTADDR");
    ifreq request = request_for();
    request.ifr_mtu = mtu;
    if (::ioctl(control, SIOCSIFMTU, &request) < 0) fail(name + ": SIOCSIFMTU");
    request = request_for();
    if (::ioctl(control, SIOCGIFFLAGS, &request) < 0) fail(name + ": SIOCGIFFLAGS");
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(control, SIOCSIFFLAGS, &request) < 0) fail(name + ": SIOCSIFFLAGS");
    ::close(control);
}

struct Counts {
    std::uint64_t forwarded = 0;
    std::uint64_t dropped = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t reordered = 0;
};

// Packets waiting for their time; ties leave in arrival order.
struct Pending {
    Clock::time_point due;
    std::uint64_t sequence;
    int destination;
    std::vector<char> packet;

    bool operator>(const Pending& other) const {
        return due != other.due ? due > other.due : sequence > other.sequence;
    }
};

class Relay {
public:
    Relay(const Settings& settings, int outer_fd, int inner_fd)
        : settings_(settings), fds_{outer_fd, inner_fd}, random_(settings.seed) {}

    Counts run() {
        std::vector<char> buffer(static_cast<std::size_t>(settings_.mtu) + 64);
        while (stop_requested == 0) {
            send_due();
            pollfd polled[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
            if (::poll(polled, 2, wait_ms()) < 0 && errno != EINTR) fail("poll");
            for (int side = 0; side < 2; ++side) {
                if ((polled[side].revents & POLLIN) == 0) continue;
                for (;;) {
                    const ssize_t got = ::read(fds_[side], buffer.data(), buffer.size());
                    if (got > 0) {
                        admit(fds_[1 - side], buffer.data(), static_cast<std::size_t>(got));
                        continue;
                    }
                    if (got < 0 && errno != EAGAIN && errno != EINTR) fail("read from a TUN");
                    break;
                }
            }
        }
        return counts_;
    }

private:
    // Like netem: a lost packet is gone, a duplicate leaves with its original, and a
    // reordered packet skips the delay, overtaking those still waiting.
    void admit(int destination, const char* data, std::size_t size) {
        if (chance(settings_.loss)) {
            ++counts_.dropped;
            return;
        }
        const bool reordered = chance(settings_.reorder);
        counts_.reordered += reordered ? 1 : 0;
        const Clock::time_point due =
            Clock::now() + (reordered ? Clock::duration::zero() : Clock::duration(settings_.delay));
        const int copies = chance(settings_.duplicate) ? 2 : 1;
        counts_.duplicated += copies - 1;
        for (int copy = 0; copy < copies; ++copy) {
            pending_.push({due, sequence_++, destination, std::vector<char>(data, data + size)});
        }
    }

    void send_due() {
        const Clock::time_point now = Clock::now();
        while (!pending_.empty() && pending_.top().due <= now) {
            const Pending& next = pending_.top();
            // A TUN write hands the packet to the kernel's stack; one it refuses is lost,
            // as on a wire.
            if (::write(next.destination, next.packet.data(), next.packet.size()) ==
                static_cast<ssize_t>(next.packet.size())) {
                ++counts_.forwarded;
            }
            pending_.pop();
        }
    }

    int wait_ms() const {
        if (pending_.empty()) return 100;  // wakes to notice a stop request
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(pending_.top().due - Clock::now());
        return static_cast<int>(std::max<std::int64_t>(0, left.count()));
    }

    bool chance(double probability) { return unit_(random_) < probability; }

    Settings settings_;
    int fds_[2];
    std::mt19937_64 random_;
    std::uniform_real_distribution<double> unit_{0.0, 1.0};
    std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending_;
    std::uint64_t sequence_ = 0;
    Counts counts_;
};

}  // namespace

int main(int argc, char** argv) {
    const Settings settings = parse(argc, argv);
    struct sigaction stop {};
    stop.sa_handler = request_stop;
    ::sigaction(SIGTERM, &stop, nullptr);
    ::sigaction(SIGINT, &stop, nullptr);

    std::string outer_name;
    const int outer_fd = open_tun(outer_name);
    configure(outer_name, settings.outer, settings.inner, settings.mtu);
    if (::unshare(CLONE_NEWNET) != 0) fail("unshare(CLONE_NEWNET)", exit_unsupported);
    std::string inner_name;
    const int inner_fd = open_tun(inner_name);
    configure(inner_name, settings.inner, settings.outer, settings.mtu);
    std::printf("ready %s %s\n", outer_name.c_str(), inner_name.c_str());
    std::fflush(stdout);

    const Counts counts = Relay(settings, outer_fd, inner_fd).run();
    std::printf("relay: forwarded=%llu dropped=%llu duplicated=%llu reordered=%llu\n",
                static_cast<unsigned long long>(counts.forwarded),
                static_cast<unsigned long long>(counts.dropped),
                static_cast<unsigned long long>(counts.duplicated),
                static_cast<unsigned long long>(counts.reordered));
    return 0;
}
