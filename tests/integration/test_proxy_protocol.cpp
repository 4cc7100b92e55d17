// The PROXY protocol on both sides of fulcrum: headers it sends to backends (checked byte
// for byte, and by nginx, which parses them), and headers it accepts from a balancer in
// front (HAProxy, and raw sockets that send good, bad, split and late headers).

#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <cstdint>
#include <future>
#include <set>
#include <string>
#include <thread>

#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using Catch::Matchers::Contains;

namespace {

// The v2 signature, version 2 / PROXY command, then TCP over IPv4 with 12 address bytes.
std::string v2_tcp4(const char* source, const char* destination, std::uint16_t source_port,
                    std::uint16_t destination_port) {
    std::string header("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c", 16);
    for (const char* ip : {source, destination}) {
        in_addr address{};
        REQUIRE(inet_pton(AF_INET, ip, &address) == 1);
        header.append(reinterpret_cast<const char*>(&address), 4);
    }
    for (const std::uint16_t port : {source_port, destination_port}) {
        const std::uint16_t network = htons(port);
        header.append(reinterpret_cast<const char*>(&network), 2);
    }
    return header;
}

std::string v1_tcp4(std::uint16_t source_port, std::uint16_t destination_port) {
    return "PROXY TCP4 127.0.0.1 127.0.0.1 " + std::to_string(source_port) + " " +
           std::to_string(destination_port) + "\r\n";
}

// A backend that reads a header of a known length, hands it to the test, then echoes.
class HeaderRecorder {
public:
    explicit HeaderRecorder(std::size_t header_length)
        : server_([this, header_length](Socket s) {
              header_.set_value(s.read_exact(header_length));
              for (std::string chunk; !(chunk = s.read_some()).empty();) s.send_all(chunk);
              s.shutdown_write();
          }) {}
    std::uint16_t port() const { return server_.port(); }
    std::string header() {
        auto future = header_.get_future();
        REQUIRE(future.wait_for(10s) == std::future_status::ready);
        return future.get();
    }

private:
    std::promise<std::string> header_;
    ScriptedServer server_;
};

// nginx (from Debian's package) serving HTTP on a `listen ... proxy_protocol` socket: it
// answers / with the client and server addresses it read from the PROXY header, and
// /health with 200.
class ProxyProtocolNginx {
public:
    ProxyProtocolNginx() : port_(free_port()), process_(start()) {
        if (!poll_until([&] { return process_.listening_on(port_); }, 10s)) {
            FAIL("nginx is not listening:\n" << process_.output());
        }
    }
    std::uint16_t port() const { return port_; }

private:
    ChildProcess start() {
        const std::string d = dir_.path();
        const std::string conf = dir_.write("nginx.conf", R"(
daemon off;
master_process off;
worker_processes 1;
pid )" + d + R"(/nginx.pid;
error_log stderr info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path )" + d + R"(/body;
    proxy_temp_path )" + d + R"(/proxy;
    fastcgi_temp_path )" + d + R"(/fastcgi;
    uwsgi_temp_path )" + d + R"(/uwsgi;
    scgi_temp_path )" + d + R"(/scgi;
    server {
        listen 127.0.0.1:)" + std::to_string(port_) +
                                                              R"( proxy_protocol;
        location = /health { return 200 "ok\n"; }
        location / {
            default_type text/plain;
            return 200 "client=$proxy_protocol_addr:$proxy_protocol_port server=$proxy_protocol_server_addr:$proxy_protocol_server_port\n";
        }
    }
}
)");
        return ChildProcess({"/usr/sbin/nginx", "-p", d, "-c", conf, "-e", "stderr"});
    }

    std::uint16_t port_;
    TempDir dir_;
    ChildProcess process_;
};

// HAProxy (from Debian's package) in TCP mode in front of `target`, sending PROXY v2.
class HaproxyInFront {
public:
    explicit HaproxyInFront(std::uint16_t target) : port_(free_port()), process_(start(target)) {
        if (!poll_until([&] { return process_.listening_on(port_); }, 10s)) {
            FAIL("haproxy is not listening:\n" << process_.output());
        }
    }
    std::uint16_t port() const { return port_; }

private:
    ChildProcess start(std::uint16_t target) {
        const std::string cfg = dir_.write("haproxy.cfg", R"(
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:)" + std::to_string(port_) + R"(
    default_backend fulcrum
backend fulcrum
    server fulcrum 127.0.0.1:)" + std::to_string(target) +
                                                              R"( send-proxy-v2
)");
        return ChildProcess({"/usr/sbin/haproxy", "-db", "-f", cfg});
    }

    std::uint16_t port_;
    TempDir dir_;
    ChildProcess process_;
};

}  // namespace

TEST_CASE("send_proxy writes the header before the client's first byte", "[proxy_protocol]") {
    const bool v2 = GENERATE(false, true);
    INFO((v2 ? "v2" : "v1"));
    const std::uint16_t listen = free_port();
    // The client's port is not known before it connects: size the recorder for v1 from a
    // five-digit port, the kernel's ephemeral range.
    HeaderRecorder backend(v2 ? 28 : v1_tcp4(10000, listen).size());
    ServiceSpec service =
        service_to({backend.port()}, v2 ? "send_proxy = \"v2\"" : "send_proxy = \"v1\"");
    service.listen = listen;
    Fulcrum fulcrum = start_fulcrum({service});

    Socket client = connect_to(listen);
    const std::uint16_t client_port = local_port(client);
    REQUIRE(client_port >= 10000);
    const Transfer t = echo_over(client, 4 * 1024 * 1024);
    CHECK(t.received == 4 * 1024 * 1024);
    CHECK(t.received_hash == t.sent_hash);
    CHECK(backend.header() == (v2 ? v2_tcp4("127.0.0.1", "127.0.0.1", client_port, listen)
                                  : v1_tcp4(client_port, listen)));
}

TEST_CASE("nginx reads the client's address from fulcrum's header, v1 and v2",
          "[proxy_protocol][nginx]") {
    const std::string version = GENERATE(as<std::string>{}, "v1", "v2");
    INFO(version);
    ProxyProtocolNginx nginx;
    // Health checks send the header too, or nginx would refuse them: a second service
    // probing the same nginx without it shows the difference.
    ServiceSpec with = service_to({nginx.port()}, "send_proxy = \"" + version + "\"", "with");
    with.health = "interval = \"100ms\"\ntimeout = \"90ms\"\nfall = 1\nsend_proxy = true";
    ServiceSpec without = service_to({nginx.port()}, "send_proxy = \"" + version + "\"", "without");
    without.health = "interval = \"100ms\"\ntimeout = \"90ms\"\nfall = 1";
    Fulcrum fulcrum = start_fulcrum({with, without});

    Socket client = connect_to(with.listen, 10);
    const std::uint16_t client_port = local_port(client);
    client.send_all("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    const std::string response = client.read_to_eof();
    CHECK_THAT(response, Contains("HTTP/1.1 200"));
    CHECK_THAT(response, Contains("client=127.0.0.1:" + std::to_string(client_port) +
                                  " server=127.0.0.1:" + std::to_string(with.listen) + "\n"));

    // Probes without the header fail (nginx closes on them); probes with it pass.
    CHECK(fulcrum.process().wait_for_output("service without: backend b0 is down", 5s));
    CHECK(poll_until(
        [&] {
            return count_of(fulcrum.process().output(),
                            "service with: backend b0: probe passed: status 200") >= 3;
        },
        5s));
    CHECK_THAT(fulcrum.process().output(), !Contains("service with: backend b0: probe failed"));
}

TEST_CASE("behind HAProxy, fulcrum passes on the client address HAProxy saw",
          "[proxy_protocol][haproxy]") {
    ProxyProtocolNginx nginx;
    ServiceSpec service = service_to({nginx.port()},
                                     "accept_proxy = true\nproxy_trusted = [\"127.0.0.0/8\"]\n"
                                     "send_proxy = \"v1\"");
    Fulcrum fulcrum = start_fulcrum({service});
    HaproxyInFront haproxy(service.listen);

    Socket client = connect_to(haproxy.port(), 10);
    const std::uint16_t client_port = local_port(client);
    client.send_all("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    const std::string response = client.read_to_eof();
    // The client and the address it connected to (HAProxy's), two proxies away.
    CHECK_THAT(response, Contains("client=127.0.0.1:" + std::to_string(client_port) +
                                  " server=127.0.0.1:" + std::to_string(haproxy.port()) + "\n"));
    client = Socket();  // HAProxy ends its side towards fulcrum once the client has closed
    CHECK(fulcrum.process().wait_for_output(
        "access client=127.0.0.1:" + std::to_string(client_port) + " via=127.0.0.1:", 5s));
}

TEST_CASE("accept_proxy: a header split across reads, and the bytes after it", "[proxy_protocol]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()}, "accept_proxy = true");
    Fulcrum fulcrum = start_fulcrum({service});

    const bool v2 = GENERATE(false, true);
    const std::string header = v2 ? v2_tcp4("192.0.2.1", "198.51.100.2", 4321, 443)
                                  : std::string("PROXY TCP4 192.0.2.1 198.51.100.2 4321 443\r\n");
    Socket client = connect_to(service.listen);
    // One byte at a time, the last one together with the first bytes of the stream.
    for (std::size_t i = 0; i + 1 < header.size(); ++i) {
        client.send_all(header.substr(i, 1));
        std::this_thread::sleep_for(1ms);  // a separate segment, usually a separate read
    }
    client.send_all(header.substr(header.size() - 1) + "hello");
    CHECK(client.read_exact(5) == "hello");
    const Transfer t = echo_over(client, 8 * 1024 * 1024);
    CHECK(t.received_hash == t.sent_hash);
    CHECK(fulcrum.process().wait_for_output("access client=192.0.2.1:4321 via=127.0.0.1:", 5s));
}

TEST_CASE("accept_proxy: the carried address drives source-hash", "[proxy_protocol]") {
    NamedEcho b0("b0"), b1("b1"), b2("b2");
    ServiceSpec service = service_to({b0.port(), b1.port(), b2.port()},
                                     "accept_proxy = true\nstrategy = \"source-hash\"");
    Fulcrum fulcrum = start_fulcrum({service});

    // Every real connection comes from 127.0.0.1; only the headers differ.
    const auto backend_for = [&](int host) {
        Socket s = connect_to(service.listen);
        s.send_all("PROXY TCP4 10.0.0." + std::to_string(host) + " 127.0.0.1 1000 80\r\n");
        std::string name;
        for (char c = 0; (c = s.read_exact(1)[0]) != '\n';) name += c;
        return name;
    };
    std::set<std::string> used;
    for (int host = 1; host <= 30; ++host) {
        const std::string first = backend_for(host);
        CHECK(backend_for(host) == first);
        used.insert(first);
    }
    CHECK(used.size() == 3);
}

TEST_CASE("accept_proxy: LOCAL and UNKNOWN headers keep the connection's own address",
          "[proxy_protocol]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()}, "accept_proxy = true");
    Fulcrum fulcrum = start_fulcrum({service});

    for (const std::string& header : {std::string("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16),
                                      std::string("PROXY UNKNOWN\r\n")}) {
        Socket client = connect_to(service.listen);
        const std::uint16_t port = local_port(client);
        client.send_all(header + "ping");
        CHECK(client.read_exact(4) == "ping");
        client.shutdown_write();
        CHECK(client.read_to_eof().empty());
        CHECK(fulcrum.process().wait_for_output("access client=127.0.0.1:" + std::to_string(port) +
                                                    " via=127.0.0.1:" + std::to_string(port),
                                                5s));
    }
}

TEST_CASE("accept_proxy: a bad, late or untrusted header closes that connection only",
          "[proxy_protocol]") {
    EchoServer echo;
    ServiceSpec open =
        service_to({echo.port()}, "accept_proxy = true\nproxy_timeout = \"300ms\"", "open");
    ServiceSpec closed = service_to(
        {echo.port()}, "accept_proxy = true\nproxy_trusted = [\"10.0.0.0/8\", \"::1\"]", "closed");
    Fulcrum fulcrum = start_fulcrum({open, closed});
    // A session in progress, which none of what follows may disturb.
    Socket bystander = connect_to(open.listen);
    bystander.send_all("PROXY TCP4 192.0.2.9 127.0.0.1 9 9\r\nbefore");
    CHECK(bystander.read_exact(6) == "before");

    SECTION("not a PROXY header") {
        Socket client = connect_to(open.listen);
        client.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(client.read_until_closed() >= 0);
        CHECK(fulcrum.process().wait_for_output("no valid PROXY header", 5s));
    }
    SECTION("a v1 header without its CRLF within 107 bytes") {
        Socket client = connect_to(open.listen);
        client.send_all("PROXY TCP4 " + std::string(120, '1'));
        CHECK(client.read_until_closed() >= 0);
        CHECK(fulcrum.process().wait_for_output("no valid PROXY header", 5s));
    }
    SECTION("a v2 header with a bad version") {
        Socket client = connect_to(open.listen);
        client.send_all(std::string("\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c", 16));
        CHECK(client.read_until_closed() >= 0);
        CHECK(fulcrum.process().wait_for_output("no valid PROXY header", 5s));
    }
    SECTION("half a header, then nothing until proxy_timeout") {
        Socket client = connect_to(open.listen);
        client.send_all("PROXY TCP4 192.0.2.1 ");
        const auto start = std::chrono::steady_clock::now();
        CHECK(client.read_until_closed() >= 0);
        CHECK(std::chrono::steady_clock::now() - start >= 250ms);
        CHECK(fulcrum.process().wait_for_output("none within proxy_timeout (300ms)", 5s));
    }
    SECTION("the peer is not in proxy_trusted") {
        Socket client = connect_to(closed.listen);
        client.send_all("PROXY TCP4 10.1.1.1 127.0.0.1 1 2\r\nhello");
        CHECK(client.read_until_closed() >= 0);
        CHECK(fulcrum.process().wait_for_output("peer not in proxy_trusted", 5s));
    }
    CHECK(fulcrum.process().wait_for_output("end=bad-proxy-header", 5s));
    // Rejected connections never reached a backend; the bystander's session still works.
    CHECK(echo.accepted() == 1);
    bystander.send_all("after");
    CHECK(bystander.read_exact(5) == "after");
}
