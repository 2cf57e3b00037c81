/*
 * The connection half of the C API test: stud_conn from creation to close, with NULL and misuse
 * cases. Entry points are called by api_test.c's main.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "api_test.h"

static struct sockaddr_in v4(const char *ip, uint16_t port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static const stud_config *build_ok(stud_config_builder *b) {
    const stud_config *config = NULL;
    char err[512] = "";
    stud_result r = stud_config_builder_build(b, err, sizeof err, &config);
    if (r != STUD_OK) {
        fprintf(stderr, "build failed (%u): %s\n", (unsigned)r, err);
    }
    CHECK_RESULT(r, STUD_OK);
    CHECK(config != NULL);
    return config;
}

/* ------------------------------------------------------------------ connections */

static const stud_config *default_config(void) {
    stud_config_builder *b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_handshake_timeout_ms(b, 10000), STUD_OK);
    return build_ok(b);
}

static stud_conn *new_conn(const stud_config *config, uint64_t now) {
    struct sockaddr_in peer = v4("192.0.2.7", 5555), local = v4("192.0.2.1", 443);
    stud_conn *conn = NULL;
    CHECK_RESULT(stud_conn_new(config, now, (struct sockaddr *)&peer, sizeof peer,
                               (struct sockaddr *)&local, sizeof local, &conn),
                 STUD_OK);
    CHECK(conn != NULL);
    return conn;
}

/* Polls actions until NONE; returns the close reason if a close came, else STUD_CLOSE_NONE. */
static stud_close_reason drain_actions(stud_conn *conn, int *connects) {
    stud_close_reason closed = STUD_CLOSE_NONE;
    for (int i = 0; i < 16; i++) {
        stud_action action;
        stud_close_reason reason;
        CHECK_RESULT(stud_conn_poll_action(conn, &action, &reason), STUD_OK);
        if (action == STUD_ACTION_NONE) {
            return closed;
        }
        if (action == STUD_ACTION_CLOSE) {
            closed = reason;
        } else {
            CHECK_EQ(reason, STUD_CLOSE_NONE);
        }
        if (action == STUD_ACTION_CONNECT_BACKEND && connects) {
            (*connects)++;
        }
    }
    CHECK(!"poll_action never returned STUD_ACTION_NONE");
    return closed;
}

void test_conn_new_and_addresses(void) {
    const stud_config *config = default_config();
    struct sockaddr_in peer = v4("192.0.2.7", 5555), local = v4("192.0.2.1", 443);
    struct sockaddr *p = (struct sockaddr *)&peer, *l = (struct sockaddr *)&local;
    stud_conn *conn = (stud_conn *)0x1;

    CHECK_RESULT(stud_conn_new(NULL, 0, p, sizeof peer, l, sizeof local, &conn),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, NULL, sizeof peer, l, sizeof local, &conn),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, sizeof peer, NULL, sizeof local, &conn),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, sizeof peer, l, sizeof local, NULL),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, sizeof peer - 1, l, sizeof local, &conn),
                 STUD_INVALID_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, 1, l, sizeof local, &conn), STUD_INVALID_PARAMETER);
    struct sockaddr_un unix_addr;
    memset(&unix_addr, 0, sizeof unix_addr);
    unix_addr.sun_family = AF_UNIX;
    CHECK_RESULT(stud_conn_new(config, 0, (struct sockaddr *)&unix_addr, sizeof unix_addr, l,
                               sizeof local, &conn),
                 STUD_INVALID_PARAMETER);
    CHECK(conn == (stud_conn *)0x1); /* untouched on every error */

    /* IPv6 peer, IPv4 local; addresses come back as given. */
    struct sockaddr_in6 peer6;
    memset(&peer6, 0, sizeof peer6);
    peer6.sin6_family = AF_INET6;
    peer6.sin6_port = htons(40000);
    inet_pton(AF_INET6, "2001:db8::7", &peer6.sin6_addr);
    CHECK_RESULT(stud_conn_new(config, 0, (struct sockaddr *)&peer6, sizeof peer6, l,
                               sizeof local, &conn),
                 STUD_OK);
    /* The connection holds its own reference: freeing the config first is fine. */
    stud_config_free(config);

    struct sockaddr_storage ss;
    socklen_t len = 0;
    CHECK_RESULT(stud_conn_peer_addr(conn, &ss, &len), STUD_OK);
    CHECK_EQ(len, sizeof peer6);
    CHECK(memcmp(&ss, &peer6, sizeof peer6) == 0);
    CHECK_RESULT(stud_conn_local_addr(conn, &ss, &len), STUD_OK);
    CHECK_EQ(len, sizeof local);
    CHECK(memcmp(&ss, &local, sizeof local) == 0);
    CHECK_RESULT(stud_conn_peer_addr(NULL, &ss, &len), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_peer_addr(conn, NULL, &len), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_local_addr(conn, &ss, NULL), STUD_NULL_PARAMETER);
    stud_conn_free(conn);
    stud_conn_free(NULL);
}

void test_conn_null_handles(void) {
    uint8_t buf[16] = {0};
    size_t n;
    uint32_t u;
    uint64_t t;
    bool yes;
    stud_event ev;
    stud_action action;
    stud_close_reason reason;
    stud_handshake_info info;
    char text[64];

    CHECK_RESULT(stud_conn_handle_client_data(NULL, 0, buf, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data(NULL, 0, buf, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_data_mut(NULL, 0, buf, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data_mut(NULL, 0, buf, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_eof(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_reset(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_connected(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_connect_failed(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_eof(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_reset(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_timeout(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_abort(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_event(NULL, &ev), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_action(NULL, &action, &reason), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_close_message(NULL, text, sizeof text, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handshake_info(NULL, &info), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_client_transmit(NULL, 0, buf, sizeof buf, &n),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_backend_transmit(NULL, 0, buf, sizeof buf, &n),
                 STUD_NULL_PARAMETER);
    CHECK_EQ(stud_conn_write_client(NULL, 0, NULL, NULL, &n), EINVAL);
    CHECK_EQ(stud_conn_write_backend(NULL, 0, NULL, NULL, &n), EINVAL);
    CHECK_RESULT(stud_conn_poll_timeout(NULL, &t), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_interest(NULL, &u), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_client_read_capacity(NULL, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_backend_read_capacity(NULL, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_buffered(NULL, &n, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_handshaking(NULL, &yes), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_closed(NULL, &yes), STUD_NULL_PARAMETER);
}

static void test_conn_null_out_params(stud_conn *conn) {
    uint8_t buf[16] = {0};
    size_t n;
    CHECK_RESULT(stud_conn_handle_client_data(conn, 0, NULL, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_data(conn, 0, buf, 1, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data(conn, 0, NULL, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data(conn, 0, buf, 1, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_data_mut(conn, 0, NULL, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_data_mut(conn, 0, buf, 1, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data_mut(conn, 0, NULL, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data_mut(conn, 0, buf, 1, NULL), STUD_NULL_PARAMETER);
    stud_action action;
    stud_close_reason reason;
    CHECK_RESULT(stud_conn_poll_action(conn, NULL, &reason), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_action(conn, &action, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_event(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_close_message(conn, NULL, 10, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handshake_info(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, 0, NULL, 10, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, 0, buf, sizeof buf, NULL),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_backend_transmit(conn, 0, NULL, 10, &n), STUD_NULL_PARAMETER);
    CHECK_EQ(stud_conn_write_client(conn, 0, NULL, NULL, &n), EINVAL);
    CHECK_RESULT(stud_conn_poll_timeout(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_interest(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_client_read_capacity(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_backend_read_capacity(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_buffered(conn, NULL, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_buffered(conn, &n, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_handshaking(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_closed(conn, NULL), STUD_NULL_PARAMETER);
}

/* A write callback that takes at most `budget` bytes, then says EAGAIN, or fails with `fail`. */
typedef struct {
    uint8_t data[65536];
    size_t len;
    size_t budget;
    int fail;
    int calls;
} sink;

static stud_io_result sink_write(void *userdata, const uint8_t *buf, size_t len, size_t *out_n) {
    sink *s = userdata;
    s->calls++;
    if (s->fail) {
        return s->fail;
    }
    size_t room = sizeof s->data - s->len;
    size_t n = len < s->budget ? len : s->budget;
    n = n < room ? n : room;
    if (n == 0) {
        return EAGAIN;
    }
    memcpy(s->data + s->len, buf, n);
    s->len += n;
    s->budget -= n;
    *out_n = n;
    return 0;
}

void test_conn_handshake_start(void) {
    const stud_config *config = default_config();
    uint64_t now = 1000000;
    stud_conn *conn = new_conn(config, now);
    test_conn_null_out_params(conn);

    bool yes = false;
    CHECK_RESULT(stud_conn_is_handshaking(conn, &yes), STUD_OK);
    CHECK(yes);
    CHECK_RESULT(stud_conn_is_closed(conn, &yes), STUD_OK);
    CHECK(!yes);
    uint32_t interest = 0;
    CHECK_RESULT(stud_conn_interest(conn, &interest), STUD_OK);
    CHECK_EQ(interest, STUD_INTEREST_CLIENT_READ);
    uint64_t deadline = 0;
    CHECK_RESULT(stud_conn_poll_timeout(conn, &deadline), STUD_OK);
    CHECK_EQ(deadline, now + 10000 * 1000ULL);
    size_t cap = 0;
    CHECK_RESULT(stud_conn_client_read_capacity(conn, &cap), STUD_OK);
    CHECK(cap >= hello.len);
    CHECK_RESULT(stud_conn_backend_read_capacity(conn, &cap), STUD_OK);
    CHECK_EQ(cap, 0);
    stud_handshake_info info;
    CHECK_RESULT(stud_conn_handshake_info(conn, &info), STUD_NOT_FOUND);
    /* Nothing is known of the client's certificate before the handshake; out-params untouched. */
    uint32_t verify = 77;
    size_t certs = 77;
    stud_slice_bytes der = {NULL, 77};
    CHECK_RESULT(stud_conn_client_verify(conn, &verify), STUD_NOT_FOUND);
    CHECK_RESULT(stud_conn_peer_certificate_count(conn, &certs), STUD_NOT_FOUND);
    CHECK_RESULT(stud_conn_peer_certificate(conn, 0, &der), STUD_NOT_FOUND);
    CHECK_EQ(verify, 77);
    CHECK_EQ(certs, 77);
    CHECK_EQ(der.len, 77);
    CHECK_RESULT(stud_conn_client_verify(NULL, &verify), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_client_verify(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_peer_certificate_count(NULL, &certs), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_peer_certificate_count(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_peer_certificate(NULL, 0, &der), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_peer_certificate(conn, 0, NULL), STUD_NULL_PARAMETER);
    char text[256];
    size_t n = 0;
    CHECK_RESULT(stud_conn_close_message(conn, text, sizeof text, &n), STUD_NOT_FOUND);
    stud_event ev = STUD_EVENT_HANDSHAKE_COMPLETE;
    CHECK_RESULT(stud_conn_poll_event(conn, &ev), STUD_OK);
    CHECK_EQ(ev, STUD_EVENT_NONE);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);

    /* Empty input is fine, even with a NULL pointer. */
    CHECK_RESULT(stud_conn_handle_client_data(conn, now, NULL, 0, &n), STUD_OK);
    CHECK_EQ(n, 0);
    /* The ClientHello is taken whole; the server's first flight waits for the client. */
    CHECK_RESULT(stud_conn_handle_client_data(conn, now, hello.data, hello.len, &n), STUD_OK);
    CHECK_EQ(n, hello.len);
    CHECK_RESULT(stud_conn_interest(conn, &interest), STUD_OK);
    CHECK(interest & STUD_INTEREST_CLIENT_WRITE);
    CHECK(!(interest & (STUD_INTEREST_BACKEND_READ | STUD_INTEREST_BACKEND_WRITE)));
    size_t to_backend = 1, to_client = 0;
    CHECK_RESULT(stud_conn_buffered(conn, &to_backend, &to_client), STUD_OK);
    CHECK_EQ(to_backend, 0);
    CHECK(to_client > 0);
    /* No backend yet: no connect action before the handshake completes, nothing for it. */
    int connects = 0;
    CHECK_EQ(drain_actions(conn, &connects), STUD_CLOSE_NONE);
    CHECK_EQ(connects, 0);
    uint8_t buf[32768];
    CHECK_RESULT(stud_conn_poll_backend_transmit(conn, now, buf, sizeof buf, &n), STUD_OK);
    CHECK_EQ(n, 0);
    CHECK_RESULT(stud_conn_handle_backend_data(conn, now, (const uint8_t *)"x", 1, &n), STUD_OK);
    CHECK_EQ(n, 0);

    /* Zero-copy write through the callback: partial writes, EAGAIN, then errors. */
    sink *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    s->budget = 10;
    n = 999;
    CHECK_EQ(stud_conn_write_client(conn, now, sink_write, s, &n), 0);
    CHECK_EQ(n, 10);
    CHECK(s->data[0] == 0x16); /* a TLS handshake record */
    s->budget = 0;
    CHECK_EQ(stud_conn_write_client(conn, now, sink_write, s, &n), 0);
    CHECK_EQ(n, 0);
    s->fail = EPIPE;
    CHECK_EQ(stud_conn_write_client(conn, now, sink_write, s, &n), EPIPE);
    s->fail = 0;
    /* The rest through a caller buffer; the stream continues where the callback stopped. */
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, now, buf, sizeof buf, &n), STUD_OK);
    CHECK(n > 0);
    CHECK_EQ(n + 10, to_client);
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, now, buf, sizeof buf, &n), STUD_OK);
    CHECK_EQ(n, 0);
    CHECK_RESULT(stud_conn_interest(conn, &interest), STUD_OK);
    CHECK(!(interest & STUD_INTEREST_CLIENT_WRITE));
    /* Nothing to write for the backend before it is connected. */
    CHECK_EQ(stud_conn_write_backend(conn, now, sink_write, s, &n), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(stud_conn_write_backend(conn, now, NULL, s, &n), EINVAL);
    free(s);

    /* The handshake deadline passes: closed with a reason, and nothing after. */
    CHECK_RESULT(stud_conn_handle_timeout(conn, now + 5000), STUD_OK); /* early: harmless */
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    CHECK_RESULT(stud_conn_handle_timeout(conn, deadline), STUD_OK);
    /* Decided but not yet polled: not closed yet, so the reason cannot be skipped. */
    CHECK_RESULT(stud_conn_is_closed(conn, &yes), STUD_OK);
    CHECK(!yes);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_HANDSHAKE_TIMEOUT);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    CHECK_RESULT(stud_conn_is_closed(conn, &yes), STUD_OK);
    CHECK(yes);
    CHECK_RESULT(stud_conn_poll_timeout(conn, &deadline), STUD_OK);
    CHECK_EQ(deadline, STUD_NO_DEADLINE);
    CHECK_RESULT(stud_conn_close_message(conn, text, sizeof text, &n), STUD_OK);
    CHECK(strcmp(text, "handshake_timeout") == 0);
    CHECK_EQ(n, strlen("handshake_timeout"));
    CHECK_RESULT(stud_conn_close_message(conn, text, 3, &n), STUD_INSUFFICIENT_SIZE);
    /* Inputs after the close are harmless. */
    CHECK_RESULT(stud_conn_handle_client_data(conn, deadline, hello.data, hello.len, &n), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_eof(conn, deadline), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    stud_conn_free(conn);
    stud_config_free(config);
}

void test_conn_close_reasons(void) {
    const stud_config *config = default_config();
    char text[256];
    size_t n;

    /* Garbage instead of a ClientHello: an alert goes out, then the close. */
    stud_conn *conn = new_conn(config, 0);
    const uint8_t junk[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    CHECK_RESULT(stud_conn_handle_client_data(conn, 1, junk, sizeof junk - 1, &n), STUD_OK);
    stud_close_reason reason = drain_actions(conn, NULL);
    uint8_t buf[4096];
    for (int i = 0; i < 4 && reason == STUD_CLOSE_NONE; i++) {
        CHECK_RESULT(stud_conn_poll_client_transmit(conn, 1, buf, sizeof buf, &n), STUD_OK);
        reason = drain_actions(conn, NULL);
    }
    CHECK_EQ(reason, STUD_CLOSE_HANDSHAKE_FAILED);
    CHECK_RESULT(stud_conn_close_message(conn, text, sizeof text, &n), STUD_OK);
    CHECK(strncmp(text, "handshake_failed: ", 18) == 0);
    stud_conn_free(conn);

    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_handle_client_eof(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_CLIENT_CLOSED_IN_HANDSHAKE);
    stud_conn_free(conn);

    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_handle_client_reset(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_CLIENT_CLOSED_IN_HANDSHAKE);
    stud_conn_free(conn);

    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_abort(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_ABORTED);
    stud_conn_free(conn);

    /* Expecting a load balancer's PROXY header, a ClientHello is refused with its own reason. */
    stud_config_builder *pb = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(pb, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_accept_proxy_header(pb, true), STUD_OK);
    const stud_config *proxied = build_ok(pb);
    conn = new_conn(proxied, 0);
    CHECK_RESULT(stud_conn_handle_client_data(conn, 1, hello.data, hello.len, &n), STUD_OK);
    CHECK_EQ(n, hello.len);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_BAD_PROXY_HEADER);
    CHECK_RESULT(stud_conn_close_message(conn, text, sizeof text, &n), STUD_OK);
    CHECK(strncmp(text, "bad_proxy_header: ", 18) == 0);
    stud_conn_free(conn);
    /* With the header first, the handshake proceeds. */
    conn = new_conn(proxied, 0);
    const uint8_t line[] = "PROXY TCP4 198.51.100.7 203.0.113.9 4242 443\r\n";
    CHECK_RESULT(stud_conn_handle_client_data(conn, 1, line, sizeof line - 1, &n), STUD_OK);
    CHECK_EQ(n, sizeof line - 1);
    CHECK_RESULT(stud_conn_handle_client_data(conn, 1, hello.data, hello.len, &n), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    uint32_t interest = 0;
    CHECK_RESULT(stud_conn_interest(conn, &interest), STUD_OK);
    CHECK(interest & STUD_INTEREST_CLIENT_WRITE);
    stud_conn_free(conn);
    stud_config_free(proxied);

    /* Backend inputs before any backend was asked for are ignored. */
    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_handle_backend_connected(conn, 1), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_connect_failed(conn, 1), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_reset(conn, 1), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_eof(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    bool yes = false;
    CHECK_RESULT(stud_conn_is_handshaking(conn, &yes), STUD_OK);
    CHECK(yes);
    /* Freed without being closed: fine. */
    stud_conn_free(conn);
    stud_config_free(config);

    /* Reason names are stable. */
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_NONE), "none") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_COMPLETED), "completed") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_HANDSHAKE_FAILED), "handshake_failed") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_BACKEND_CONNECT_TIMEOUT),
                 "backend_connect_timeout") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_ABORTED), "aborted") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_BAD_PROXY_HEADER), "bad_proxy_header") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_BACKEND_HANDSHAKE_FAILED),
                 "backend_handshake_failed") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_OTHER), "unknown") == 0);
    CHECK(strcmp(stud_close_reason_name(1000), "unknown") == 0);
    for (uint32_t r = 0; r <= 14; r++) {
        CHECK(strcmp(stud_close_reason_name(r), "unknown") != 0);
    }
}

