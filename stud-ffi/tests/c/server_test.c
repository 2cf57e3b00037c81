/*
 * stud_server from C: NULL and misuse cases, a run on one thread stopped from another, and a
 * run stopped through the stop descriptor as a signal handler would.
 *   server_test SITE_PEM BACKEND_PORT
 * Prints "listening on PORT" and then waits for one line on standard input before stopping, so
 * the driving test can push TLS traffic through it first.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stud.h>

static int failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Runs on the server's thread. */
static void on_log(void *userdata, stud_log_kind kind, const char *message) {
    (*(int *)userdata)++;
    printf("log %u %s\n", (unsigned)kind, message);
    fflush(stdout);
}

static void *run_server(void *arg) {
    stud_result *result = malloc(sizeof *result);
    if (result) {
        *result = stud_server_run((const stud_server *)arg);
    }
    return result;
}

static stud_result join(pthread_t thread) {
    void *ret = NULL;
    pthread_join(thread, &ret);
    stud_result r = ret ? *(stud_result *)ret : STUD_PANIC;
    free(ret);
    return r;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SITE_PEM BACKEND_PORT\n", argv[0]);
        return 2;
    }
    stud_config_builder *b = stud_config_builder_new();
    CHECK(stud_config_builder_add_pem_file(b, argv[1]) == STUD_OK);
    const stud_config *config = NULL;
    char err[256];
    if (stud_config_builder_build(b, err, sizeof err, &config) != STUD_OK) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }

    struct sockaddr_in listen_addr, backend;
    memset(&listen_addr, 0, sizeof listen_addr);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    backend = listen_addr;
    backend.sin_port = htons((uint16_t)atoi(argv[2]));
    struct sockaddr *l = (struct sockaddr *)&listen_addr, *be = (struct sockaddr *)&backend;

    /* Misuse. */
    stud_server *server = (stud_server *)0x1;
    CHECK(stud_server_new(NULL, l, sizeof listen_addr, be, sizeof backend, 0, 0, &server) ==
          STUD_NULL_PARAMETER);
    CHECK(stud_server_new(config, NULL, sizeof listen_addr, be, sizeof backend, 0, 0, &server) ==
          STUD_NULL_PARAMETER);
    CHECK(stud_server_new(config, l, 3, be, sizeof backend, 0, 0, &server) ==
          STUD_INVALID_PARAMETER);
    CHECK(stud_server_new(config, l, sizeof listen_addr, be, sizeof backend, 0, 0, NULL) ==
          STUD_NULL_PARAMETER);
    CHECK(server == (stud_server *)0x1);
    CHECK(stud_server_run(NULL) == STUD_NULL_PARAMETER);
    CHECK(stud_server_stop(NULL) == STUD_NULL_PARAMETER);
    CHECK(stud_server_stop_now(NULL) == STUD_NULL_PARAMETER);
    int fd = -1;
    CHECK(stud_server_stop_fd(NULL, &fd) == STUD_NULL_PARAMETER);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    CHECK(stud_server_local_addr(NULL, &ss, &len) == STUD_NULL_PARAMETER);
    CHECK(stud_server_set_log_callback(NULL, on_log, NULL) == STUD_NULL_PARAMETER);
    stud_server_free(NULL);

    /* Several backends: misuse first. */
    struct sockaddr_in refusing = backend;
    refusing.sin_port = htons(1); /* nothing listens on port 1: the connect is refused */
    const struct sockaddr *backends[2] = {(struct sockaddr *)&refusing, be};
    const socklen_t lens[2] = {sizeof refusing, sizeof backend};
    const socklen_t short_lens[2] = {sizeof refusing, 3};
    CHECK(stud_server_new_backends(config, l, sizeof listen_addr, NULL, lens, 2, 60, 0, 0,
                                   &server) == STUD_NULL_PARAMETER);
    CHECK(stud_server_new_backends(config, l, sizeof listen_addr, backends, NULL, 2, 60, 0, 0,
                                   &server) == STUD_NULL_PARAMETER);
    CHECK(stud_server_new_backends(config, l, sizeof listen_addr, backends, lens, 0, 60, 0, 0,
                                   &server) == STUD_INVALID_PARAMETER);
    CHECK(stud_server_new_backends(config, l, sizeof listen_addr, backends, short_lens, 2, 60, 0,
                                   0, &server) == STUD_INVALID_PARAMETER);
    CHECK(server == (stud_server *)0x1);

    /* A server run on a thread, stopped gracefully from this one. Its first backend refuses,
     * so the driving test's exchange is served through the second. */
    CHECK(stud_server_new_backends(config, l, sizeof listen_addr, backends, lens, 2, 60, 2000,
                                   100, &server) == STUD_OK);
    stud_config_free(config); /* the server keeps its own reference */
    CHECK(stud_server_local_addr(server, &ss, &len) == STUD_OK);
    CHECK(stud_server_local_addr(server, NULL, &len) == STUD_NULL_PARAMETER);
    CHECK(len == sizeof(struct sockaddr_in));
    struct sockaddr_in *bound = (struct sockaddr_in *)&ss;
    CHECK(bound->sin_family == AF_INET && bound->sin_port != 0);
    printf("listening on %u\n", (unsigned)ntohs(bound->sin_port));
    fflush(stdout);

    int reports = 0;
    CHECK(stud_server_set_log_callback(server, NULL, NULL) == STUD_OK);
    CHECK(stud_server_set_log_callback(server, on_log, &reports) == STUD_OK);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, run_server, server) == 0);
    /* The driving test sends its traffic, then a line on stdin. */
    char line[16];
    if (!fgets(line, sizeof line, stdin)) {
        fprintf(stderr, "stdin closed before the go-ahead\n");
    }
    /* Still running: the observer cannot change under the loop. */
    CHECK(stud_server_set_log_callback(server, NULL, NULL) == STUD_ALREADY_USED);
    CHECK(stud_server_stop(server) == STUD_OK);
    CHECK(join(thread) == STUD_OK);
    CHECK(reports >= 2); /* the exchange's handshake and close */
    /* After the run returned, running again returns at once. */
    CHECK(stud_server_run(server) == STUD_OK);
    stud_server_free(server);

    /* A second server stopped through its descriptor, as from a signal handler, before and
     * during its run. */
    config = NULL;
    b = stud_config_builder_new();
    CHECK(stud_config_builder_add_pem_file(b, argv[1]) == STUD_OK);
    CHECK(stud_config_builder_build(b, NULL, 0, &config) == STUD_OK);
    CHECK(stud_server_new(config, l, sizeof listen_addr, be, sizeof backend, 0, 0, &server) ==
          STUD_OK);
    stud_config_free(config);
    CHECK(stud_server_stop_fd(server, &fd) == STUD_OK);
    CHECK(fd >= 0);
    CHECK(stud_server_stop_fd(server, NULL) == STUD_NULL_PARAMETER);
    CHECK(pthread_create(&thread, NULL, run_server, server) == 0);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK(write(fd, "n", 1) == 1);
    CHECK(join(thread) == STUD_OK);
    stud_server_free(server);

    printf("server_test: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
