/*
 * embed.c - a small TLS terminator in C on top of libstud.
 *
 * Accepts TLS on 127.0.0.1:LISTEN_PORT, terminates it with libstud and forwards the plaintext
 * to BACKEND_HOST:BACKEND_PORT, one backend connection per client, with a poll(2) loop.
 * libstud owns the TLS state, the buffering budgets, the half-closes and the deadlines; this
 * file owns the sockets and the clock.
 *
 *   cc -std=c11 -Wall -Wextra -O2 embed.c $(pkg-config --cflags --libs stud) -o embed
 *   ./embed site.pem 8443 127.0.0.1 8080 [MAX_CONNECTIONS]
 *
 * LISTEN_PORT 0 picks a free port; the chosen one is printed as "listening on PORT". After
 * MAX_CONNECTIONS connections have closed (default: never) or on SIGTERM/SIGINT, it frees
 * everything and exits 0. One line per handshake and per close goes to standard output.
 *
 * With STUD_CLIENT_CA=FILE in the environment, every client must present a certificate issued
 * by a CA in FILE (PEM); the handshake line then names it.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <stud.h>

#define MAX_CONNS 64
#define READ_CHUNK 16384

typedef struct {
    stud_conn *conn;     /* NULL: slot free */
    int client_fd;
    int backend_fd;      /* -1 until STUD_ACTION_CONNECT_BACKEND */
    int connecting;      /* nonblocking connect in progress */
    int closed;          /* STUD_ACTION_CLOSE seen: free at the end of this round */
} slot;

static volatile sig_atomic_t stop_requested;
static slot slots[MAX_CONNS];
static struct sockaddr_in backend_addr;
static uint8_t scratch[READ_CHUNK];

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* libstud hands bytes to this; userdata is the socket. Partial writes and EAGAIN are fine. */
static stud_io_result write_fd(void *userdata, const uint8_t *buf, size_t len, size_t *out_n) {
    int fd = *(const int *)userdata;
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
        return errno;
    }
    *out_n = (size_t)n;
    return 0;
}

static void report(stud_result r, const char *what) {
    char msg[128];
    size_t n;
    if (stud_result_message(r, msg, sizeof msg, &n) != STUD_OK) {
        strcpy(msg, "?");
    }
    fprintf(stderr, "%s: %s (%u)\n", what, msg, (unsigned)r);
}

static void start_backend_connect(slot *s) {
    uint64_t now = now_us();
    s->backend_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->backend_fd < 0) {
        stud_conn_handle_backend_connect_failed(s->conn, now);
        return;
    }
    int one = 1;
    setsockopt(s->backend_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s->backend_fd, (struct sockaddr *)&backend_addr, sizeof backend_addr) == 0) {
        stud_conn_handle_backend_connected(s->conn, now);
    } else if (errno == EINPROGRESS) {
        s->connecting = 1;
    } else {
        stud_conn_handle_backend_connect_failed(s->conn, now);
    }
}

static void print_handshake(stud_conn *conn) {
    stud_handshake_info info;
    if (stud_conn_handshake_info(conn, &info) != STUD_OK) {
        return;
    }
    printf("handshake sni=%s alpn=%.*s version=%04x suite=%s", info.sni ? info.sni : "-",
           (int)info.alpn_len, info.alpn ? (const char *)info.alpn : "", info.version,
           info.cipher_suite);
    /* The client's certificate, when one was asked for: its length and last bytes. */
    uint32_t verify = STUD_CLIENT_VERIFY_NOT_REQUESTED;
    size_t certs = 0;
    stud_slice_bytes leaf = {NULL, 0};
    if (stud_conn_client_verify(conn, &verify) == STUD_OK &&
        verify != STUD_CLIENT_VERIFY_NOT_REQUESTED &&
        stud_conn_peer_certificate_count(conn, &certs) == STUD_OK) {
        printf(" client=%s certs=%zu", verify == STUD_CLIENT_VERIFY_VERIFIED ? "verified" : "none",
               certs);
        if (stud_conn_peer_certificate(conn, 0, &leaf) == STUD_OK && leaf.len >= 8) {
            printf(" leaf_len=%zu leaf_tail=", leaf.len);
            for (size_t i = leaf.len - 8; i < leaf.len; i++) {
                printf("%02x", leaf.data[i]);
            }
        }
    }
    printf("\n");
}

/* Carries out every pending action; returns 1 once the connection is closed. */
static int handle_actions(slot *s) {
    stud_action action;
    stud_close_reason reason;
    while (stud_conn_poll_action(s->conn, &action, &reason) == STUD_OK &&
           action != STUD_ACTION_NONE) {
        switch (action) {
        case STUD_ACTION_CONNECT_BACKEND:
            start_backend_connect(s);
            break;
        case STUD_ACTION_SHUTDOWN_BACKEND_WRITE:
            shutdown(s->backend_fd, SHUT_WR);
            break;
        case STUD_ACTION_SHUTDOWN_CLIENT_WRITE:
            shutdown(s->client_fd, SHUT_WR);
            break;
        case STUD_ACTION_CLOSE: {
            char msg[256];
            size_t n;
            if (stud_conn_close_message(s->conn, msg, sizeof msg, &n) != STUD_OK) {
                strcpy(msg, "-");
            }
            printf("closed reason=%s message=%s\n", stud_close_reason_name(reason), msg);
            s->closed = 1;
            return 1;
        }
        default:
            break;
        }
    }
    return 0;
}

/* Drains events, actions and bytes after an input, as the contract asks: actions again after
 * every write (the last byte out can make a shutdown or the close due), a bounded number of
 * rounds per wake so one busy connection cannot starve the others. */
static void service(slot *s) {
    for (int round = 0; round < 8; round++) {
        uint64_t now = now_us();
        stud_event ev;
        while (stud_conn_poll_event(s->conn, &ev) == STUD_OK && ev != STUD_EVENT_NONE) {
            print_handshake(s->conn);
        }
        if (handle_actions(s)) {
            return;
        }
        size_t to_client = 0, to_backend = 0;
        int rc = stud_conn_write_client(s->conn, now, write_fd, &s->client_fd, &to_client);
        if (rc != 0) { /* EAGAIN is not an error: libstud reports it as 0 */
            stud_conn_handle_client_reset(s->conn, now);
            continue;
        }
        if (s->backend_fd >= 0 && !s->connecting) {
            rc = stud_conn_write_backend(s->conn, now, write_fd, &s->backend_fd, &to_backend);
            if (rc != 0) { /* EAGAIN is not an error: libstud reports it as 0 */
                stud_conn_handle_backend_reset(s->conn, now);
                continue;
            }
        }
        if (to_client == 0 && to_backend == 0) {
            return;
        }
    }
}

/* Reads what the connection can take from one socket and feeds it in. */
static void read_side(slot *s, int client) {
    uint64_t now = now_us();
    size_t cap = 0;
    if (client) {
        stud_conn_client_read_capacity(s->conn, &cap);
    } else {
        stud_conn_backend_read_capacity(s->conn, &cap);
    }
    if (cap == 0) {
        return;
    }
    size_t want = cap < sizeof scratch ? cap : sizeof scratch;
    ssize_t n = recv(client ? s->client_fd : s->backend_fd, scratch, want, 0);
    if (n > 0) {
        size_t consumed = 0;
        /* n <= capacity, so every byte is taken. */
        if (client) {
            stud_conn_handle_client_data(s->conn, now, scratch, (size_t)n, &consumed);
        } else {
            stud_conn_handle_backend_data(s->conn, now, scratch, (size_t)n, &consumed);
        }
        if (consumed != (size_t)n) {
            fprintf(stderr, "libstud took %zu of %zd bytes\n", consumed, n);
        }
    } else if (n == 0) {
        if (client) {
            stud_conn_handle_client_eof(s->conn, now);
        } else {
            stud_conn_handle_backend_eof(s->conn, now);
        }
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (client) {
            stud_conn_handle_client_reset(s->conn, now);
        } else {
            stud_conn_handle_backend_reset(s->conn, now);
        }
    }
}

static void free_slot(slot *s) {
    stud_conn_free(s->conn);
    close(s->client_fd);
    if (s->backend_fd >= 0) {
        close(s->backend_fd);
    }
    memset(s, 0, sizeof *s);
}

static void accept_one(int listener, const stud_config *config) {
    struct sockaddr_storage peer, local;
    socklen_t peer_len = sizeof peer, local_len = sizeof local;
    int fd = accept(listener, (struct sockaddr *)&peer, &peer_len);
    if (fd < 0) {
        return;
    }
    slot *s = NULL;
    for (int i = 0; i < MAX_CONNS; i++) {
        if (slots[i].conn == NULL) {
            s = &slots[i];
            break;
        }
    }
    if (s == NULL || set_nonblocking(fd) < 0 ||
        getsockname(fd, (struct sockaddr *)&local, &local_len) < 0) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    stud_conn *conn = NULL;
    stud_result r = stud_conn_new(config, now_us(), (struct sockaddr *)&peer, peer_len,
                                  (struct sockaddr *)&local, local_len, &conn);
    if (r != STUD_OK) {
        report(r, "stud_conn_new");
        close(fd);
        return;
    }
    s->conn = conn;
    s->client_fd = fd;
    s->backend_fd = -1;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s PEM LISTEN_PORT BACKEND_HOST BACKEND_PORT [MAX_CONNECTIONS]\n",
                argv[0]);
        return 2;
    }
    long max_closed = argc == 6 ? atol(argv[5]) : -1;

    /* One config, built once, shared by every connection. */
    stud_config_builder *builder = stud_config_builder_new();
    stud_result r = stud_config_builder_add_pem_file(builder, argv[1]);
    if (r != STUD_OK) {
        report(r, "stud_config_builder_add_pem_file");
        stud_config_builder_free(builder);
        return 1;
    }
    stud_slice_bytes alpn[] = {{(const uint8_t *)"http/1.1", 8}};
    stud_config_builder_set_alpn_protocols(builder, alpn, 1);
    stud_config_builder_set_handshake_timeout_ms(builder, 10000);
    stud_config_builder_set_linger_timeout_ms(builder, 5000);
    const char *client_ca = getenv("STUD_CLIENT_CA");
    if (client_ca != NULL) {
        stud_config_builder_set_client_verify(builder, STUD_CLIENT_VERIFY_REQUIRED);
        stud_config_builder_add_client_ca_file(builder, client_ca); /* read by the build */
    }
    const stud_config *config = NULL;
    char err[512];
    r = stud_config_builder_build(builder, err, sizeof err, &config); /* frees the builder */
    if (r != STUD_OK) {
        fprintf(stderr, "configuration: %s\n", err);
        return 1;
    }

    memset(&backend_addr, 0, sizeof backend_addr);
    backend_addr.sin_family = AF_INET;
    backend_addr.sin_port = htons((uint16_t)atoi(argv[4]));
    if (inet_pton(AF_INET, argv[3], &backend_addr.sin_addr) != 1) {
        fprintf(stderr, "bad backend address %s\n", argv[3]);
        stud_config_free(config);
        return 2;
    }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 128) < 0) die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");
    printf("listening on %u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    long closed_count = 0;
    while (!stop_requested && (max_closed < 0 || closed_count < max_closed)) {
        struct pollfd pfds[1 + 2 * MAX_CONNS];
        int owner[1 + 2 * MAX_CONNS]; /* slot index; client side even, backend odd */
        int nfds = 0;
        pfds[nfds].fd = listener;
        pfds[nfds].events = POLLIN;
        owner[nfds++] = -1;
        uint64_t now = now_us(), next = STUD_NO_DEADLINE;
        for (int i = 0; i < MAX_CONNS; i++) {
            slot *s = &slots[i];
            if (!s->conn) continue;
            uint32_t interest = 0;
            stud_conn_interest(s->conn, &interest);
            short ev = 0;
            if (interest & STUD_INTEREST_CLIENT_READ) ev |= POLLIN;
            if (interest & STUD_INTEREST_CLIENT_WRITE) ev |= POLLOUT;
            /* A socket with no interest is left out (negative fd): poll would otherwise keep
             * reporting a hang-up the connection cannot act on yet, and spin. */
            pfds[nfds].fd = ev ? s->client_fd : -1;
            pfds[nfds].events = ev;
            owner[nfds++] = 2 * i;
            if (s->backend_fd >= 0) {
                ev = 0;
                if (s->connecting || (interest & STUD_INTEREST_BACKEND_WRITE)) ev |= POLLOUT;
                if (interest & STUD_INTEREST_BACKEND_READ) ev |= POLLIN;
                pfds[nfds].fd = ev ? s->backend_fd : -1;
                pfds[nfds].events = ev;
                owner[nfds++] = 2 * i + 1;
            }
            uint64_t deadline = STUD_NO_DEADLINE;
            stud_conn_poll_timeout(s->conn, &deadline);
            if (deadline < next) next = deadline;
        }
        int timeout_ms = -1;
        if (next != STUD_NO_DEADLINE) {
            timeout_ms = next <= now ? 0 : (int)((next - now + 999) / 1000);
        }
        int ready = poll(pfds, (nfds_t)nfds, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (pfds[0].revents & POLLIN) {
            accept_one(listener, config);
        }
        for (int k = 1; k < nfds; k++) {
            slot *s = &slots[owner[k] / 2];
            short rev = pfds[k].revents;
            if (!s->conn || s->closed || rev == 0) continue;
            int client = owner[k] % 2 == 0;
            if (!client && s->connecting) {
                int soerr = 0;
                socklen_t slen = sizeof soerr;
                getsockopt(s->backend_fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
                s->connecting = 0;
                if (soerr == 0) {
                    stud_conn_handle_backend_connected(s->conn, now_us());
                } else {
                    stud_conn_handle_backend_connect_failed(s->conn, now_us());
                }
            } else if (rev & (POLLIN | POLLHUP | POLLERR)) {
                read_side(s, client);
            }
        }
        now = now_us();
        for (int i = 0; i < MAX_CONNS; i++) {
            slot *s = &slots[i];
            if (!s->conn) continue;
            uint64_t deadline = STUD_NO_DEADLINE;
            stud_conn_poll_timeout(s->conn, &deadline);
            if (deadline <= now) stud_conn_handle_timeout(s->conn, now);
            service(s);
            if (s->closed) {
                free_slot(s);
                closed_count++;
            }
        }
        fflush(stdout);
    }

    for (int i = 0; i < MAX_CONNS; i++) {
        if (slots[i].conn) {
            stud_conn_abort(slots[i].conn, now_us());
            free_slot(&slots[i]);
        }
    }
    close(listener);
    stud_config_free(config);
    printf("exiting after %ld connections\n", closed_count);
    return 0;
}
