/*
 * sockit's process spawner for the exec service: clone with CLONE_VM | CLONE_VFORK (what glibc's
 * posix_spawn does, on a stack kept for it: start_child) instead of libuv's fork, so starting a
 * command does not copy the page tables of the server. A fork from a 90 MB Node process costs
 * ~0.5 ms and grows with the heap; this stays ~0.2 ms. The child's exit is watched through a
 * pidfd polled on Node's own event loop.
 *
 * spawn(file, argv, env, cwd, pipeStdin, onExit) -> [pid, stdinFd, stdoutFd, stderrFd]
 *   file      program; searched on env's PATH (else the server's) unless it contains a slash
 *   argv      the whole argv, argv[0] included
 *   env       the child's whole environment, as a prepareEnv handle (below)
 *   cwd       the child's working directory: a path, or an open directory descriptor (a
 *             number) that the child fchdir()s to, so a directory checked by the caller cannot
 *             be swapped (for a symlink, say) between the check and the start
 *   pipeStdin true: stdinFd is our end of a socketpair; false: stdin is /dev/null, stdinFd -1
 *   onExit    called once as onExit(code, null) or onExit(null, signalNumber), once the leader
 *             has exited and been reaped; its process group has been sent SIGKILL just before
 *             the reaping (while the zombie still held the group's id)
 * The child leads a new session and process group (setsid), has every signal at its default
 * disposition and none blocked (Node ignores SIGPIPE; a command must not inherit that), and gets
 * stdout and stderr on pipes (a piped stdin on a socketpair, as libuv gives it, so that it can be
 * shut down). Our ends are close-on-exec, and every descriptor above 2 is closed in the child
 * before exec (close_range; where the kernel refuses it, each one up to the highest open), also
 * one the server inherited without close-on-exec.
 * Failures throw an Error whose `code` is the errno name (ENOENT, EACCES, ...).
 *
 * spawnPty(file, argv, env, cwd, rows, cols, onExit) -> [pid, masterFd, writerFd]
 *   The same, but the child's stdin, stdout and stderr are the slave side of a new
 *   pseudo-terminal (posix_openpt) of rows x cols, and it gets that terminal as its controlling
 *   terminal: the child calls setsid before it opens the slave, and a session leader that opens
 *   a tty without O_NOCTTY acquires it (Linux). masterFd (close-on-exec, ours) carries the bytes.
 *   The server never holds the slave open, so once the child and its descendants close it, a
 *   read of masterFd fails with EIO: that is the terminal's end-of-file. writerFd is a second
 *   descriptor of the same master: libuv watches a descriptor number once per loop, so reading
 *   (readOutput on masterFd) and writing need one each, and the caller closes it once the exit
 *   is seen, so that closing masterFd at EIO does not hang up a command that has not yet exited.
 *
 * resize(masterFd, rows, cols): TIOCSWINSZ; the kernel sends SIGWINCH to the foreground group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <node_api.h>
#include <signal.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"

typedef struct {
  uv_poll_t poll;
  int pidfd;
  pid_t pid;
  napi_env env;
  napi_ref on_exit;
  napi_async_context context;
} exit_watch;


static napi_value throw_errno(napi_env env, int err, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, errno_name(err), message);
  return NULL;
}

/* ---- strings from JS --------------------------------------------------------------------- */

/* "/proc/self/fd/N": what a descriptor cwd is called in messages (and chdir'ed to without fchdir). */
static char *describe_fd(int fd) {
  char *text = malloc(32);
  if (text != NULL) snprintf(text, 32, "/proc/self/fd/%d", fd);
  return text;
}

static char *utf8(napi_env env, napi_value value) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *text = malloc(length + 1);
  if (text == NULL) return NULL;
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  /* A NUL inside the string would silently cut an argument short: refuse it. */
  if (strlen(text) != length) {
    free(text);
    return NULL;
  }
  return text;
}

static void free_list(char **list) {
  if (list == NULL) return;
  for (char **item = list; *item != NULL; item++) free(*item);
  free(list);
}

/* A NULL-terminated copy of a JS array of strings; NULL if it is not one. */
static char **string_list(napi_env env, napi_value array) {
  uint32_t count = 0;
  if (napi_get_array_length(env, array, &count) != napi_ok) return NULL;
  char **list = calloc(count + 1, sizeof(char *));
  if (list == NULL) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    napi_get_element(env, array, i, &item);
    list[i] = utf8(env, item);
    if (list[i] == NULL) {
      free_list(list);
      return NULL;
    }
  }
  return list;
}

/*
 * prepareEnv(list) -> handle: an environment converted to C strings once, for the spawns that
 * pass it again and again (a server's base environment, every command that sets no variables
 * of its own). Converting ~40 "NAME=value" strings costs two N-API calls and a malloc each,
 * ~20 us per spawn; the handle costs a type-tag check. Freed when the handle is collected.
 */
static const napi_type_tag ENV_TAG = {0x736f636b69746576ULL, 0x656e766c69737421ULL}; /* "sockitev" "envlist!" */

static void free_prepared_env(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free_list(data);
}

static napi_value PrepareEnv(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value list;
  napi_get_cb_info(env, info, &argc, &list, NULL, NULL);
  char **envp = argc < 1 ? NULL : string_list(env, list);
  if (envp == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "prepareEnv: a list of strings without NUL bytes expected");
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, envp, free_prepared_env, NULL, &handle) != napi_ok ||
      napi_type_tag_object(env, handle, &ENV_TAG) != napi_ok) {
    free_list(envp);
    napi_throw_error(env, "ENOMEM", "prepareEnv: out of memory");
    return NULL;
  }
  return handle;
}

/* A spawn's environment: the C strings of a prepareEnv handle (the handle owns them), or NULL. */
static char **env_argument(napi_env env, napi_value value) {
  bool prepared = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, value, &ENV_TAG, &prepared) != napi_ok || !prepared ||
      napi_get_value_external(env, value, &data) != napi_ok)
    return NULL;
  return data;
}

/* ---- program lookup ---------------------------------------------------------------------- */

/*
 * execvp's search, on the child's PATH: the first executable `dir/file`. Returns 0 and fills
 * `out`, or an errno: EACCES if only non-executable matches were seen, else ENOENT.
 */
static int find_program(const char *file, char **env, char *out, size_t size) {
  if (strchr(file, '/') != NULL) {
    if (strlen(file) >= size) return ENAMETOOLONG;
    strcpy(out, file);
    return 0;
  }
  const char *path = NULL;
  for (char **item = env; *item != NULL; item++) {
    if (strncmp(*item, "PATH=", 5) == 0) path = *item + 5;
  }
  if (path == NULL) path = getenv("PATH");
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  int result = ENOENT;
  while (true) {
    const char *end = strchrnul(path, ':');
    size_t dir_length = (size_t)(end - path);
    /* An empty entry means the current directory, as in execvp. */
    int written = dir_length == 0 ? snprintf(out, size, "%s", file)
                                  : snprintf(out, size, "%.*s/%s", (int)dir_length, path, file);
    if (written > 0 && (size_t)written < size) {
      if (access(out, X_OK) == 0) return 0;
      if (errno == EACCES && access(out, F_OK) == 0) result = EACCES;
    }
    if (*end == '\0') return result;
    path = end + 1;
  }
}

/* ---- exit watching ----------------------------------------------------------------------- */

static void on_watch_closed(uv_handle_t *handle) { free(handle->data); }

static void on_pidfd_readable(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  exit_watch *watch = poll->data;
  siginfo_t exited;
  memset(&exited, 0, sizeof exited);
  int peeked;
  do {
    peeked = waitid(P_PID, (id_t)watch->pid, &exited, WEXITED | WNOHANG | WNOWAIT);
  } while (peeked < 0 && errno == EINTR);
  if (peeked == 0 && exited.si_pid == 0) return; /* not yet: the pidfd will be readable again */
  /*
   * Whatever the command left in its group dies with it, and now, before the leader is reaped:
   * its zombie still holds the group's id, so the kill cannot reach a group that reused it.
   */
  if (peeked == 0) kill(-watch->pid, SIGKILL);
  int wait_status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(watch->pid, &wait_status, WNOHANG);
  } while (reaped < 0 && errno == EINTR);
  if (reaped == 0) return; /* cannot happen after the peek; the pidfd would be readable again */
  /* uv_close stops the poll and takes the descriptor out of epoll: a uv_poll_stop before it
   * would do that too, and the close's own removal would then fail on a closed descriptor. */
  uv_close((uv_handle_t *)poll, on_watch_closed); /* frees watch on a later turn of the loop */
  close(watch->pidfd);

  napi_env env = watch->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value on_exit, receiver, argv[2], ignored;
  napi_get_reference_value(env, watch->on_exit, &on_exit);
  napi_get_global(env, &receiver); /* napi_make_callback wants an object */
  if (reaped > 0 && WIFSIGNALED(wait_status)) {
    napi_get_null(env, &argv[0]);
    napi_create_int32(env, WTERMSIG(wait_status), &argv[1]);
  } else {
    /* reaped < 0 (ECHILD) cannot happen for our own child; report it as a failure. */
    napi_create_int32(env, reaped > 0 ? WEXITSTATUS(wait_status) : 255, &argv[0]);
    napi_get_null(env, &argv[1]);
  }
  napi_make_callback(env, watch->context, receiver, on_exit, 2, argv, &ignored);
  napi_delete_reference(env, watch->on_exit);
  napi_async_destroy(env, watch->context);
  napi_close_handle_scope(env, scope);
}

static int watch_exit(napi_env env, pid_t pid, napi_value on_exit) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return errno;
  exit_watch *watch = calloc(1, sizeof *watch);
  uv_loop_t *loop = NULL;
  if (watch == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(watch);
    close(pidfd);
    return ENOMEM;
  }
  watch->pid = pid;
  watch->pidfd = pidfd;
  watch->env = env;
  napi_value name;
  napi_create_string_utf8(env, "sockit:spawn", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &watch->context);
  napi_create_reference(env, on_exit, 1, &watch->on_exit);
  watch->poll.data = watch;
  int failed = uv_poll_init(loop, &watch->poll, pidfd);
  bool initialized = failed == 0;
  if (initialized) failed = uv_poll_start(&watch->poll, UV_READABLE, on_pidfd_readable);
  if (failed != 0) {
    napi_delete_reference(env, watch->on_exit);
    napi_async_destroy(env, watch->context);
    close(pidfd);
    if (initialized) uv_close((uv_handle_t *)&watch->poll, on_watch_closed);
    else free(watch);
    return -failed;
  }
  return 0;
}

/* ---- spawn --------------------------------------------------------------------------------- */

static void close_pair(int pair[2]) {
  if (pair[0] >= 0) close(pair[0]);
  if (pair[1] >= 0) close(pair[1]);
  pair[0] = pair[1] = -1;
}

/* close_range(2), Linux 5.9; the generic number where old headers lack it. */
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/*
 * Whether close_range works here (probed once: an old kernel says ENOSYS, some seccomp profiles
 * EPERM). Where it does not, the parent finds its highest open descriptor before each spawn and
 * the child closes every one from 3 up to it.
 */
static bool close_range_works;

/* The highest descriptor this process has open (/proc/self/fd), or -1 if it cannot be listed. */
static int highest_open_fd(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return -1;
  int highest = -1;
  for (struct dirent *entry = readdir(dir); entry != NULL; entry = readdir(dir)) {
    int fd = atoi(entry->d_name);
    if (fd > highest) highest = fd;
  }
  closedir(dir);
  return highest;
}

/*
 * What the child does between clone and exec, all decided by the parent beforehand: the child
 * shares our memory (CLONE_VM) and our thread's TLS, and runs on a borrowed stack, so it calls
 * nothing of libc but syscall(2) (bound at load: the addon links with -z now, and no lazy
 * binding runs in the child), allocates nothing, takes no lock, and leaves its errno here when
 * it cannot exec.
 */
typedef struct {
  const char *program;
  char **argv;
  char **envp;
  /* Descriptor for the child's stdin, or -1: open stdin_path (/dev/null, or a pty's slave). */
  int stdin_fd;
  const char *stdin_path;
  int stdin_flags;
  /* Descriptors for stdout and stderr; -1: a copy of the child's stdin (a terminal's slave). */
  int stdout_fd;
  int stderr_fd;
  /* Working directory: an open directory (>= 0) or a path. */
  int cwd_fd;
  const char *cwd;
  /* Without close_range: the highest descriptor to close (from 3 up). */
  int close_up_to;
  /* Set by the child when it failed: the errno, and whether it was the working directory. */
  int error;
  bool cwd_failed;
} child_plan;

/* A raw system call of the child: its result, or -errno (the child's errno is our thread's). */
#define CHILD_CALL(...) (syscall(__VA_ARGS__) < 0 ? -errno : 0)

/* fd onto target in the child, close-on-exec cleared even when they are the same descriptor. */
static long place_fd(int fd, int target) {
  if (fd == target) return CHILD_CALL(SYS_fcntl, target, F_SETFD, 0);
  return CHILD_CALL(SYS_dup3, fd, target, 0);
}

static _Noreturn void child_fail(child_plan *plan, long negative_errno, bool cwd) {
  plan->error = (int)-negative_errno;
  plan->cwd_failed = cwd;
  for (;;) syscall(SYS_exit, 127);
}

/*
 * The child, until exec: every signal (1..64, glibc's own included) to its default disposition
 * (a handler of ours must never run on our memory, and Node ignores SIGPIPE, which a command must
 * not inherit), the working directory first (a held directory's descriptor may be 0..2, about to
 * be replaced), a new session and process group, stdio, every other descriptor closed (also one
 * the server inherited without close-on-exec: a supervisor's socket, a parent's pipe), no signal
 * blocked, exec. A terminal's slave is opened after setsid and without O_NOCTTY, so it becomes
 * the controlling terminal (Linux).
 */
static int child_main(void *argument) {
  child_plan *plan = argument;
  /* The kernel's sigaction with SIG_DFL, no flags, no restorer and an empty mask: all zero. */
  unsigned long default_action[4] = {0, 0, 0, 0};
  const unsigned long no_signals = 0;
  for (int signal_number = 1; signal_number <= 64; signal_number++)
    syscall(SYS_rt_sigaction, signal_number, default_action, NULL, sizeof no_signals); /* KILL, STOP: refused */
  long failed = plan->cwd_fd >= 0 ? CHILD_CALL(SYS_fchdir, plan->cwd_fd) : CHILD_CALL(SYS_chdir, plan->cwd);
  if (failed != 0) child_fail(plan, failed, true);
  if ((failed = CHILD_CALL(SYS_setsid)) != 0) child_fail(plan, failed, false);
  if (plan->stdin_fd >= 0) {
    if ((failed = place_fd(plan->stdin_fd, 0)) != 0) child_fail(plan, failed, false);
  } else {
    long opened = syscall(SYS_openat, AT_FDCWD, plan->stdin_path, plan->stdin_flags | O_CLOEXEC);
    if (opened < 0) child_fail(plan, -errno, false);
    if ((failed = place_fd((int)opened, 0)) != 0) child_fail(plan, failed, false);
  }
  if ((failed = place_fd(plan->stdout_fd >= 0 ? plan->stdout_fd : 0, 1)) != 0) child_fail(plan, failed, false);
  if ((failed = place_fd(plan->stderr_fd >= 0 ? plan->stderr_fd : 0, 2)) != 0) child_fail(plan, failed, false);
  if (close_range_works) syscall(SYS_close_range, 3U, ~0U, 0U);
  else
    for (int fd = 3; fd <= plan->close_up_to; fd++) syscall(SYS_close, fd);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &no_signals, NULL, sizeof no_signals);
  syscall(SYS_execve, plan->program, plan->argv, plan->envp);
  child_fail(plan, -errno, false);
}

/* The child's stack, one per thread that spawns (a vfork-style clone suspends only its thread). */
#define CHILD_STACK_BYTES (64 * 1024)
#define GUARD_BYTES 4096
static pthread_key_t child_stack_key;

static void unmap_child_stack(void *stack) { munmap(stack, GUARD_BYTES + CHILD_STACK_BYTES); }

/* Once per process, whatever the number of threads that load the addon. */
static pthread_once_t spawning_ready = PTHREAD_ONCE_INIT;

static void prepare_spawning(void) {
  pthread_key_create(&child_stack_key, unmap_child_stack);
  /* SOCKIT_NO_CLOSE_RANGE=1 takes the other way, as where the kernel refuses it (the tests run both). */
  const char *refused = getenv("SOCKIT_NO_CLOSE_RANGE");
  close_range_works = !(refused != NULL && strcmp(refused, "1") == 0) && syscall(SYS_close_range, ~0U, ~0U, 0U) == 0;
}

/*
 * Starts plan as a new process: clone(CLONE_VM | CLONE_VFORK), as glibc's posix_spawn does, so
 * the server's page tables are never copied and this thread resumes once the child has exec'd
 * (or failed), but on a stack kept for the purpose rather than one mapped and unmapped per
 * command: an unmap in a process with Node's threads flushes the TLB of every CPU they ran on.
 * Every signal is blocked around the clone so that none is handled in the child before it has
 * reset them. Returns 0 (pid set) or an errno (plan->cwd_failed: the working directory was it).
 */
static int start_child(child_plan *plan, pid_t *pid) {
  plan->error = 0;
  plan->cwd_failed = false;
  plan->close_up_to = close_range_works ? -1 : highest_open_fd();
  if (!close_range_works && plan->close_up_to < 0) return EMFILE; /* cannot keep our descriptors from it */
  char *stack = pthread_getspecific(child_stack_key);
  if (stack == NULL) {
    void *mapped = mmap(NULL, GUARD_BYTES + CHILD_STACK_BYTES, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapped == MAP_FAILED) return errno;
    if (mprotect(mapped, GUARD_BYTES, PROT_NONE) != 0 || pthread_setspecific(child_stack_key, mapped) != 0) {
      int err = errno;
      munmap(mapped, GUARD_BYTES + CHILD_STACK_BYTES);
      return err;
    }
    stack = mapped;
  }
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t started = clone(child_main, stack + GUARD_BYTES + CHILD_STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, plan);
  int err = started < 0 ? errno : 0;
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (err != 0) return err;
  if (plan->error != 0) {
    /* It exited 127 without exec: reap it here, nobody else knows of it. */
    while (waitpid(started, NULL, 0) < 0 && errno == EINTR) {
    }
    return plan->error;
  }
  *pid = started;
  return 0;
}

static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value args[6];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, env, cwd, pipeStdin, onExit)");
    return NULL;
  }
  bool pipe_stdin = false;
  napi_get_value_bool(env, args[4], &pipe_stdin);

  char *file = utf8(env, args[0]);
  napi_valuetype cwd_type = napi_undefined;
  napi_typeof(env, args[3], &cwd_type);
  int32_t cwd_fd = -1;
  char *cwd = NULL;
  if (cwd_type == napi_number) {
    napi_get_value_int32(env, args[3], &cwd_fd);
    cwd = describe_fd(cwd_fd);
  } else {
    cwd = utf8(env, args[3]);
  }
  char **argv = string_list(env, args[1]);
  char **envp = env_argument(env, args[2]);
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  napi_value result = NULL;

  if (file == NULL || cwd == NULL || argv == NULL || envp == NULL || argv[0] == NULL ||
      (cwd_type == napi_number && cwd_fd < 0)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "spawn: strings without NUL bytes expected");
    goto done;
  }
  char program[PATH_MAX];
  /* A name with a slash is resolved by the child after its chdir, as with libuv's spawn. */
  int found = find_program(file, envp, program, sizeof program);
  if (found != 0) {
    throw_errno(env, found, file);
    goto done;
  }
  /*
   * stdin is a socketpair: ending it is a shutdown(SHUT_WR), which net.Socket does and a pipe
   * refuses. stdout and stderr are pipes (read end ours, [0]): only our reader touches them, and
   * a pipe costs less to make and to read than a socketpair, on every command.
   */
  if ((pipe_stdin && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) ||
      pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw_errno(env, errno, pipe_stdin && in[0] < 0 ? "socketpair" : "pipe2");
    goto done;
  }
  child_plan plan = {
      .program = program,
      .argv = argv,
      .envp = envp,
      .stdin_fd = pipe_stdin ? in[1] : -1,
      .stdin_path = "/dev/null",
      .stdin_flags = O_RDONLY,
      .stdout_fd = out[1],
      .stderr_fd = err[1],
      .cwd_fd = cwd_fd,
      .cwd = cwd,
  };
  pid_t pid;
  int spawned = start_child(&plan, &pid);
  if (spawned != 0) {
    throw_errno(env, spawned, plan.cwd_failed ? cwd : file);
    goto done;
  }
  int watched = watch_exit(env, pid, args[5]);
  if (watched != 0) {
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    throw_errno(env, watched, "pidfd_open");
    goto done;
  }
  if (pipe_stdin) close(in[1]);
  close(out[1]);
  close(err[1]);
  in[1] = out[1] = err[1] = -1;
  napi_value item;
  napi_create_array_with_length(env, 4, &result);
  napi_create_int32(env, pid, &item);
  napi_set_element(env, result, 0, item);
  napi_create_int32(env, in[0], &item);
  napi_set_element(env, result, 1, item);
  napi_create_int32(env, out[0], &item);
  napi_set_element(env, result, 2, item);
  napi_create_int32(env, err[0], &item);
  napi_set_element(env, result, 3, item);
  in[0] = out[0] = err[0] = -1; /* handed to JS */

done:
  close_pair(in);
  close_pair(out);
  close_pair(err);
  free(file);
  free(cwd);
  free_list(argv);
  return result;
}

/* ---- pseudo-terminals ------------------------------------------------------------------- */

/* A window size from JS numbers; false if they are not 1..65535. */
static bool window_size(napi_env env, napi_value rows, napi_value cols, struct winsize *size) {
  int32_t r = 0, c = 0;
  if (napi_get_value_int32(env, rows, &r) != napi_ok || napi_get_value_int32(env, cols, &c) != napi_ok)
    return false;
  if (r < 1 || r > 65535 || c < 1 || c > 65535) return false;
  memset(size, 0, sizeof *size);
  size->ws_row = (unsigned short)r;
  size->ws_col = (unsigned short)c;
  return true;
}

static napi_value SpawnPty(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value args[7];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  if (argc < 7) {
    napi_throw_type_error(env, NULL, "spawnPty(file, argv, env, cwd, rows, cols, onExit)");
    return NULL;
  }
  struct winsize size;
  if (!window_size(env, args[4], args[5], &size)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "spawnPty: rows and cols must be 1..65535");
    return NULL;
  }
  char *file = utf8(env, args[0]);
  char *cwd = utf8(env, args[3]);
  char **argv = string_list(env, args[1]);
  char **envp = env_argument(env, args[2]);
  int master = -1;
  int writer = -1;
  napi_value result = NULL;

  if (file == NULL || cwd == NULL || argv == NULL || envp == NULL || argv[0] == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "spawnPty: strings without NUL bytes expected");
    goto done;
  }
  char program[PATH_MAX];
  int found = find_program(file, envp, program, sizeof program);
  if (found != 0) {
    throw_errno(env, found, file);
    goto done;
  }
  /* O_NOCTTY: the server must never acquire the terminal itself. */
  master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  char slave[64];
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 ||
      ptsname_r(master, slave, sizeof slave) != 0 || ioctl(master, TIOCSWINSZ, &size) != 0) {
    throw_errno(env, errno, "posix_openpt");
    goto done;
  }
  /* The writer's descriptor (see spawnPty above). */
  writer = fcntl(master, F_DUPFD_CLOEXEC, 3);
  if (writer < 0) {
    throw_errno(env, errno, "dup");
    goto done;
  }
  child_plan plan = {
      .program = program,
      .argv = argv,
      .envp = envp,
      .stdin_fd = -1,
      .stdin_path = slave, /* opened after setsid, without O_NOCTTY: the controlling terminal */
      .stdin_flags = O_RDWR,
      .stdout_fd = -1,
      .stderr_fd = -1,
      .cwd_fd = -1,
      .cwd = cwd, /* may be /proc/self/fd/N: the child chdirs before it closes the rest */
  };
  pid_t pid;
  int spawned = start_child(&plan, &pid);
  if (spawned != 0) {
    throw_errno(env, spawned, plan.cwd_failed ? cwd : file);
    goto done;
  }
  int watched = watch_exit(env, pid, args[6]);
  if (watched != 0) {
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    throw_errno(env, watched, "pidfd_open");
    goto done;
  }
  napi_value item;
  napi_create_array_with_length(env, 3, &result);
  napi_create_int32(env, pid, &item);
  napi_set_element(env, result, 0, item);
  napi_create_int32(env, master, &item);
  napi_set_element(env, result, 1, item);
  napi_create_int32(env, writer, &item);
  napi_set_element(env, result, 2, item);
  master = writer = -1; /* handed to JS */

done:
  if (master >= 0) close(master);
  if (writer >= 0) close(writer);
  free(file);
  free(cwd);
  free_list(argv);
  return result;
}

/* ---- output reading ------------------------------------------------------------------------ */

/*
 * readOutput(fd, onChunk) -> handle: reads our end of a command's stdout or stderr on Node's
 * loop (one uv_poll) and calls onChunk(buffer) per read, then onChunk(null, errnoName|null) once
 * at end-of-file or on an error, after which the descriptor is closed and the handle is done.
 * pauseOutput / resumeOutput stop and restart reading (backpressure); closeOutput ends it early
 * without a callback. Once a handle is done (its last callback came, or closeOutput) it must not be
 * passed again: its memory is gone (NativeOutput in spawner.ts forgets it). Instead of a
 * net.Socket per pipe: its handle-type probing, stream state
 * and destroy sequence cost ~4x the whole C spawn per command (docs/benchmarks.md, exec2).
 */
typedef struct {
  uv_poll_t poll;
  int fd;
  bool reading;
  bool done;
  napi_env env;
  napi_ref on_chunk;
  napi_async_context context;
} output_reader;

#define OUTPUT_READ_BYTES 65536

/* libuv has let go: the callback and its async context go with the struct, outside any JS call. */
static void on_reader_closed(uv_handle_t *handle) {
  output_reader *reader = handle->data;
  napi_delete_reference(reader->env, reader->on_chunk);
  napi_async_destroy(reader->env, reader->context);
  free(reader);
}

/* Stops for good: no callback after this one, if any is running; freed in on_reader_closed. */
static void finish_reader(output_reader *reader) {
  if (reader->done) return;
  reader->done = true;
  uv_close((uv_handle_t *)&reader->poll, on_reader_closed); /* stops it: see on_pidfd_readable */
  close(reader->fd);
}

static void on_output_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  output_reader *reader = poll->data;
  if (reader->done) return;
  char chunk[OUTPUT_READ_BYTES]; /* on the stack: a worker thread's loop may read at the same time */
  ssize_t got;
  int failure = 0;
  if (status < 0) {
    got = -1;
    failure = -status;
  } else {
    do {
      got = read(reader->fd, chunk, sizeof chunk);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      failure = errno;
    }
  }
  napi_env env = reader->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value on_chunk, receiver, argv[2], ignored;
  napi_get_reference_value(env, reader->on_chunk, &on_chunk);
  napi_get_global(env, &receiver);
  napi_async_context context = reader->context;
  if (got > 0) {
    void *data;
    napi_create_buffer_copy(env, (size_t)got, chunk, &data, &argv[0]);
    napi_make_callback(env, context, receiver, on_chunk, 1, argv, &ignored);
  } else {
    /*
     * End-of-file or an error: the handle is let go of first, then the last callback; the
     * struct lives until libuv's close callback, after this one returns.
     */
    finish_reader(reader);
    napi_get_null(env, &argv[0]);
    if (failure != 0) napi_create_string_utf8(env, errno_name(failure), NAPI_AUTO_LENGTH, &argv[1]);
    else napi_get_null(env, &argv[1]);
    napi_make_callback(env, context, receiver, on_chunk, 2, argv, &ignored);
  }
  napi_close_handle_scope(env, scope);
}

static output_reader *reader_of(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value handle;
  napi_get_cb_info(env, info, &argc, &handle, NULL, NULL);
  void *reader = NULL;
  if (argc < 1 || napi_get_value_external(env, handle, &reader) != napi_ok) {
    napi_throw_type_error(env, NULL, "an output handle from readOutput() expected");
    return NULL;
  }
  return reader;
}

static napi_value ReadOutput(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  int32_t fd = -1;
  if (argc < 2 || napi_get_value_int32(env, args[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "readOutput(fd, onChunk)");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  output_reader *reader = calloc(1, sizeof *reader);
  if (reader == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(reader);
    return throw_errno(env, ENOMEM, "readOutput");
  }
  reader->fd = fd;
  reader->env = env;
  reader->poll.data = reader;
  int failed = uv_poll_init(loop, &reader->poll, fd); /* also makes the descriptor non-blocking */
  if (failed == 0) failed = uv_poll_start(&reader->poll, UV_READABLE, on_output_readable);
  if (failed != 0) {
    free(reader); /* uv_poll_init failed before registering, or start failed: nothing pending */
    return throw_errno(env, -failed, "readOutput");
  }
  reader->reading = true;
  napi_value name;
  napi_create_string_utf8(env, "sockit:output", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &reader->context);
  napi_create_reference(env, args[1], 1, &reader->on_chunk);
  napi_value handle;
  napi_create_external(env, reader, NULL, NULL, &handle);
  return handle;
}

static napi_value PauseOutput(napi_env env, napi_callback_info info) {
  output_reader *reader = reader_of(env, info);
  if (reader != NULL && !reader->done && reader->reading) {
    uv_poll_stop(&reader->poll);
    reader->reading = false;
  }
  return NULL;
}

static napi_value ResumeOutput(napi_env env, napi_callback_info info) {
  output_reader *reader = reader_of(env, info);
  if (reader != NULL && !reader->done && !reader->reading) {
    uv_poll_start(&reader->poll, UV_READABLE, on_output_readable);
    reader->reading = true;
  }
  return NULL;
}

static napi_value CloseOutput(napi_env env, napi_callback_info info) {
  output_reader *reader = reader_of(env, info);
  if (reader != NULL) finish_reader(reader);
  return NULL;
}

static napi_value Resize(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  int32_t fd = -1;
  struct winsize size;
  if (argc < 3 || napi_get_value_int32(env, args[0], &fd) != napi_ok ||
      !window_size(env, args[1], args[2], &size)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "resize(masterFd, rows, cols): rows and cols 1..65535");
    return NULL;
  }
  if (ioctl(fd, TIOCSWINSZ, &size) != 0) return throw_errno(env, errno, "TIOCSWINSZ");
  return NULL;
}

NAPI_MODULE_INIT() {
  /* pidfd_open needs Linux 5.3: without it there is nothing to watch exits with, no module. */
  int probe = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (probe < 0) {
    napi_throw_error(env, "ENOSYS", "pidfd_open is not available (Linux 5.3 or later is needed)");
    return NULL;
  }
  close(probe);
  pthread_once(&spawning_ready, prepare_spawning);
  napi_value spawn;
  napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, Spawn, NULL, &spawn);
  napi_set_named_property(env, exports, "spawn", spawn);
  napi_value prepare_env;
  napi_create_function(env, "prepareEnv", NAPI_AUTO_LENGTH, PrepareEnv, NULL, &prepare_env);
  napi_set_named_property(env, exports, "prepareEnv", prepare_env);
  napi_value spawn_pty, resize;
  napi_create_function(env, "spawnPty", NAPI_AUTO_LENGTH, SpawnPty, NULL, &spawn_pty);
  napi_set_named_property(env, exports, "spawnPty", spawn_pty);
  napi_create_function(env, "resize", NAPI_AUTO_LENGTH, Resize, NULL, &resize);
  napi_set_named_property(env, exports, "resize", resize);
  const struct {
    const char *name;
    napi_callback function;
  } readers[] = {{"readOutput", ReadOutput}, {"pauseOutput", PauseOutput}, {"resumeOutput", ResumeOutput},
                 {"closeOutput", CloseOutput}};
  for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
    napi_value function;
    napi_create_function(env, readers[i].name, NAPI_AUTO_LENGTH, readers[i].function, NULL, &function);
    napi_set_named_property(env, exports, readers[i].name, function);
  }
  return exports;
}
