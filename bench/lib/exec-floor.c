/*
 * The floor of a networked exec service on this machine: the exec suite's batch loop protocol
 * (a count per stdin line, "done" when that many commands ran) over one loopback TCP
 * connection to a server process of its own, both in C with blocking I/O. Per command the
 * client sends one byte; the server posix_spawn()s `true` with stdout and stderr on pipes (as
 * an exec service must, to carry the output), reads both to EOF, reaps it, and answers one
 * byte. No framing, no event loop, no authentication: what is left is the spawn, the command
 * and one round trip, which no design that crosses the network can skip.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* One command: `true` with its output on pipes, read to EOF, then reaped. */
static int run_true(void) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  char *argv[] = {"true", NULL};
  pid_t pid;
  int failed = posix_spawnp(&pid, "true", &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  if (failed != 0) return -1;
  char buffer[4096];
  struct pollfd fds[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
  int open_pipes = 2;
  while (open_pipes > 0 && poll(fds, 2, -1) > 0) {
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      if (read(fds[i].fd, buffer, sizeof buffer) <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_pipes--;
      }
    }
  }
  int status;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void serve(int client) {
  char request;
  while (read(client, &request, 1) == 1) {
    char answer = run_true() == 0 ? 0 : 1;
    if (write(client, &answer, 1) != 1) break;
  }
  _exit(0);
}

int main(void) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof address;
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) != 0) {
    perror("exec-floor: listen");
    return 1;
  }
  pid_t server = fork();
  if (server == 0) {
    int client = accept(listener, NULL, NULL);
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    serve(client);
  }
  close(listener);
  int connection = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(connection, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(connection, (struct sockaddr *)&address, sizeof address) != 0) {
    perror("exec-floor: connect");
    return 1;
  }
  char line[64];
  while (fgets(line, sizeof line, stdin) != NULL) {
    for (int i = atoi(line); i > 0; i--) {
      char byte = 'x';
      if (write(connection, &byte, 1) != 1 || read(connection, &byte, 1) != 1 || byte != 0) {
        fprintf(stderr, "exec-floor: a command failed\n");
        return 1;
      }
    }
    printf("done\n");
    fflush(stdout);
  }
  close(connection);
  waitpid(server, NULL, 0);
  return 0;
}
