/*
 * The forward suite's short-connection load, in C so that it costs far less than the relay it
 * measures (a Node socket per connection cost about as much as the relay's own work).
 *
 *   short-conns echo                      an echo server on 127.0.0.1, port 0: prints "port N",
 *                                         echoes, ends its side after the client's EOF; runs
 *                                         until killed.
 *   short-conns client PORT LOOPS SECONDS MAX
 *                                         LOOPS threads, each: connect, 64 B up, read until EOF
 *                                         (the 64 B must come back), close; again until SECONDS
 *                                         passed or MAX connections were made. Prints
 *                                         "connections N seconds S cpu_us U" (U: this process).
 *
 * Every connection is honest: a fresh TCP connection, 64 B each way, a FIN each way.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int echo_server(void) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
      listen(listener, 1024) < 0 || getsockname(listener, (struct sockaddr *)&address, &length) < 0) {
    perror("echo: listen");
    return 1;
  }
  printf("port %d\n", ntohs(address.sin_port));
  fflush(stdout);
  int poller = epoll_create1(0);
  struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(poller, EPOLL_CTL_ADD, listener, &event);
  struct epoll_event ready[64];
  char buffer[4096];
  for (;;) {
    int count = epoll_wait(poller, ready, 64, -1);
    if (count < 0 && errno != EINTR) return 1;
    for (int index = 0; index < count; index++) {
      int fd = ready[index].data.fd;
      if (fd == listener) {
        int accepted;
        while ((accepted = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event added = {.events = EPOLLIN, .data.fd = accepted};
          epoll_ctl(poller, EPOLL_CTL_ADD, accepted, &added);
        }
        continue;
      }
      for (;;) {
        ssize_t got = read(fd, buffer, sizeof buffer);
        if (got > 0) {
          // 64 B always fit in an empty send buffer: no partial writes to keep.
          if (write(fd, buffer, (size_t)got) != got) {
            close(fd);
            break;
          }
          continue;
        }
        if (got == 0 || errno != EAGAIN) close(fd); // EOF (or an error): our FIN, done
        break;
      }
    }
  }
}

struct load {
  struct sockaddr_in target;
  double deadline;
  long max;
  atomic_long done;
  atomic_int failed;
};

static void *client_loop(void *argument) {
  struct load *load = argument;
  char message[MESSAGE];
  char buffer[256];
  memset(message, 'b', sizeof message);
  while (now() < load->deadline && !atomic_load(&load->failed)) {
    if (atomic_fetch_add(&load->done, 1) >= load->max) {
      atomic_fetch_sub(&load->done, 1);
      break;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long received = 0;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&load->target, sizeof load->target) == 0 &&
        write(fd, message, sizeof message) == sizeof message && shutdown(fd, SHUT_WR) == 0) {
      ssize_t got;
      while ((got = read(fd, buffer, sizeof buffer)) > 0) received += got;
    }
    if (fd >= 0) close(fd);
    if (received != MESSAGE) {
      fprintf(stderr, "short connection got %ld of %d bytes back\n", received, MESSAGE);
      atomic_store(&load->failed, 1);
    }
  }
  return NULL;
}

static int client(int port, int loops, double seconds, long max) {
  struct load load = {.target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                      .max = max};
  atomic_init(&load.done, 0);
  atomic_init(&load.failed, 0);
  double started = now();
  load.deadline = started + seconds;
  pthread_t threads[64];
  if (loops < 1 || loops > 64) loops = 8;
  for (int index = 0; index < loops; index++) pthread_create(&threads[index], NULL, client_loop, &load);
  for (int index = 0; index < loops; index++) pthread_join(threads[index], NULL);
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  long cpu = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000L + usage.ru_utime.tv_usec +
             usage.ru_stime.tv_usec;
  printf("connections %ld seconds %.6f cpu_us %ld\n", atomic_load(&load.done), now() - started, cpu);
  return atomic_load(&load.failed) ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "echo") == 0) return echo_server();
  if (argc == 6 && strcmp(argv[1], "client") == 0)
    return client(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), atol(argv[5]));
  fprintf(stderr, "usage: short-conns echo | short-conns client PORT LOOPS SECONDS MAX\n");
  return 2;
}
