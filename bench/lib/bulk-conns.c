/*
 * The forward suite's bulk load, in C so that the sender and the sink cost far less than the
 * relays they measure (in Node, on 2 cores, they were the bottleneck and hid the relays'
 * difference). The same sender and sink serve every relay.
 *
 *   bulk-conns sink                   listens on 127.0.0.1, port 0: prints "port N", then, on a
 *                                     thread per connection, takes everything until EOF by
 *                                     splice(2) through a pipe into /dev/null (no byte copied
 *                                     to user space), closes, and prints
 *                                     "eof T bytes B cpu_us U" (T: CLOCK_MONOTONIC seconds at
 *                                     EOF, U: that thread's CPU). Runs
 *                                     until killed.
 *   bulk-conns send PORT BYTES        connects to 127.0.0.1:PORT, prints "start T" (CLOCK_MONOTONIC
 *                                     seconds once connected), sends BYTES of 'a' by sendfile(2)
 *                                     from a 4 MiB memfd (page references, no copy from user
 *                                     space), shuts down its side, waits for the peer's EOF and
 *                                     prints "sent B cpu_us U" (U: this process).
 *
 * The two clocks are the same system-wide clock, so T(eof) − T(start) is the transfer's time
 * from connect to the last byte at the sink. Neither end sets SO_SNDBUF/SO_RCVBUF: the
 * kernel's autotuning is the same for every relay.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SOURCE_BYTES (4 << 20)
#define PIPE_BYTES (1 << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static long usage_us(const struct rusage *usage) {
  return (usage->ru_utime.tv_sec + usage->ru_stime.tv_sec) * 1000000L + usage->ru_utime.tv_usec +
         usage->ru_stime.tv_usec;
}

static long cpu_us(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage_us(&usage);
}

/* Reads `fd` to its EOF through a pipe into /dev/null; the byte count, or -1. */
static long long drain(int fd, int pipe_read, int pipe_write, int null_fd) {
  long long total = 0;
  for (;;) {
    ssize_t got = splice(fd, NULL, pipe_write, NULL, PIPE_BYTES, SPLICE_F_MOVE);
    if (got == 0) return total;
    if (got < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    total += got;
    while (got > 0) {
      ssize_t out = splice(pipe_read, NULL, null_fd, NULL, (size_t)got, SPLICE_F_MOVE);
      if (out <= 0 && errno != EINTR) return -1;
      if (out > 0) got -= out;
    }
  }
}

/* One accepted connection of the sink, on its own thread with its own pipe. */
static void *sink_connection(void *argument) {
  int fd = (int)(long)argument;
  int pipe_fds[2];
  int null_fd = open("/dev/null", O_WRONLY);
  long long bytes = -1;
  struct rusage before, after;
  getrusage(RUSAGE_THREAD, &before);
  if (null_fd >= 0 && pipe(pipe_fds) == 0) {
    fcntl(pipe_fds[1], F_SETPIPE_SZ, PIPE_BYTES); /* fewer splices; 64 KiB if refused */
    bytes = drain(fd, pipe_fds[0], pipe_fds[1], null_fd);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
  }
  double at = now();
  getrusage(RUSAGE_THREAD, &after);
  close(fd);
  if (null_fd >= 0) close(null_fd);
  printf("eof %.6f bytes %lld cpu_us %ld\n", at, bytes, usage_us(&after) - usage_us(&before));
  fflush(stdout);
  return NULL;
}

static int sink(void) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
      listen(listener, 16) < 0 || getsockname(listener, (struct sockaddr *)&address, &length) < 0) {
    perror("sink");
    return 1;
  }
  printf("port %d\n", ntohs(address.sin_port));
  fflush(stdout);
  /* A thread per connection: a probe that connects and never ends cannot hold up the next one. */
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      perror("sink: accept");
      return 1;
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, sink_connection, (void *)(long)fd) != 0) {
      close(fd);
      continue;
    }
    pthread_detach(thread);
  }
}

static int send_bytes(int port, long long bytes) {
  int source = memfd_create("bulk-source", 0);
  char *block = malloc(SOURCE_BYTES);
  if (source < 0 || block == NULL) {
    perror("send: memfd");
    return 1;
  }
  memset(block, 'a', SOURCE_BYTES);
  for (size_t done = 0; done < SOURCE_BYTES;) {
    ssize_t wrote = write(source, block + done, SOURCE_BYTES - done);
    if (wrote <= 0) {
      perror("send: memfd write");
      return 1;
    }
    done += (size_t)wrote;
  }
  free(block);
  struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&target, sizeof target) != 0) {
    perror("send: connect");
    return 1;
  }
  printf("start %.6f\n", now());
  fflush(stdout);
  long long left = bytes;
  while (left > 0) {
    off_t offset = 0;
    size_t size = left < SOURCE_BYTES ? (size_t)left : SOURCE_BYTES;
    while (offset < (off_t)size) {
      ssize_t sent = sendfile(fd, source, &offset, size - (size_t)offset);
      if (sent < 0 && errno != EINTR) {
        perror("send: sendfile");
        return 1;
      }
    }
    left -= (long long)size;
  }
  shutdown(fd, SHUT_WR);
  char scratch[4096];
  while (read(fd, scratch, sizeof scratch) > 0) {
  }
  close(fd);
  printf("sent %lld cpu_us %ld\n", bytes - left, cpu_us());
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "sink") == 0) return sink();
  if (argc == 4 && strcmp(argv[1], "send") == 0) return send_bytes(atoi(argv[2]), atoll(argv[3]));
  fprintf(stderr, "usage: bulk-conns sink | bulk-conns send PORT BYTES\n");
  return 2;
}
