/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The socket path belongs to one mediator at a time. A second mediator on a
 * path where a live one answers refuses to start (non-zero, naming the path)
 * and the first keeps serving; a path that is not a socket is refused and
 * left alone; a mediator whose socket file was renamed or removed, and then
 * replaced by another mediator's, leaves the newer socket in place when it
 * stops; a mediator still owning its path removes it when it stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fhelp.h"

#define SHM (2u << 20)

static struct fh_mediator a, b, c;

/* Runs a mediator on sock in the foreground; its stderr goes to errfile. */
static int run_mediator_sync(const char *sock, const char *errfile)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "timeout 10 '%s' --socket-path '%s' --backend cpu >/dev/null 2>'%s'",
             getenv("VGPU_MEDIATOR"), sock, errfile);
    return system(cmd);
}

static bool same_file(const char *path, const struct stat *was)
{
    struct stat st;

    return lstat(path, &st) == 0 && st.st_dev == was->st_dev && st.st_ino == was->st_ino;
}

/* A device attaches on path and a NOP completes. */
static bool serves(const char *path, uint32_t vm_id)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = 77 };
    struct vgpu_cqe cqe;
    struct fh_dev d;
    bool ok;

    if (fh_dev_open(&d, path, vm_id, SHM) < 0) {
        return false;
    }
    fh_dev_queue(&d, &sqe);
    fh_dev_kick(&d);
    ok = fh_dev_wait(&d, &cqe, 5000) == 0 && cqe.tag == 77 && cqe.status == VGPU_S_OK;
    fh_dev_close(&d);
    return ok;
}

static bool exited_0(int status)
{
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
    char errfile[160], plain[160], moved[160];
    struct stat st_a, st_b, st_c, st;
    int r, fd;

    if (fh_mediator_start(&a, NULL, NULL) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    snprintf(errfile, sizeof(errfile), "%s/second.err", a.dir);
    snprintf(plain, sizeof(plain), "%s/run/plain.sock", a.dir);
    snprintf(moved, sizeof(moved), "%s/run/moved.sock", a.dir);
    CHECK(lstat(a.sock, &st_a) == 0 && S_ISSOCK(st_a.st_mode), "mediator A listens");

    /* a second mediator where a live one answers */
    r = run_mediator_sync(a.sock, errfile);
    CHECK(WIFEXITED(r) && WEXITSTATUS(r) != 0, "a second mediator on A's live socket exits non-zero"
          " (0x%x)", r);
    CHECK(fh_file_contains(errfile, "another mediator is answering") && fh_file_contains(errfile, a.sock),
          "with a message naming the path");
    CHECK(same_file(a.sock, &st_a), "A's socket file is untouched");
    CHECK(serves(a.sock, 1), "A still serves");

    /* a path that is not a socket */
    fd = open(plain, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && write(fd, "keep", 4) == 4, "a plain file where a socket would go");
    if (fd >= 0) {
        close(fd);
    }
    r = run_mediator_sync(plain, errfile);
    CHECK(WIFEXITED(r) && WEXITSTATUS(r) != 0, "a mediator on a plain file exits non-zero (0x%x)", r);
    CHECK(fh_file_contains(errfile, "not a socket") && fh_file_contains(errfile, plain),
          "saying it is not a socket, naming it");
    CHECK(lstat(plain, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 4, "the file is left alone");
    unlink(plain);

    /* A's socket renamed away, B started on the path: A's exit leaves B's socket */
    CHECK(rename(a.sock, moved) == 0, "A's socket file renamed away");
    r = fh_mediator_start(&b, a.dir, NULL);
    CHECK(r == 0 && lstat(b.sock, &st_b) == 0 && !same_file(b.sock, &st_a),
          "mediator B starts on the same path");
    r = fh_mediator_stop(&a, false);
    CHECK(exited_0(r), "A stops, exit 0 (0x%x)", r);
    CHECK(same_file(b.sock, &st_b), "B's socket file is still there after A stopped");
    CHECK(serves(b.sock, 2), "and B answers on it");
    CHECK(fh_file_contains(a.log, "no longer this mediator's socket"), "A says why it left the path");
    unlink(moved);

    /* B's socket removed, C started on the path: the same when B stops */
    CHECK(unlink(b.sock) == 0, "B's socket file removed");
    r = fh_mediator_start(&c, a.dir, NULL);
    CHECK(r == 0 && lstat(c.sock, &st_c) == 0, "mediator C starts on the path");
    r = fh_mediator_stop(&b, false);
    CHECK(exited_0(r), "B stops, exit 0 (0x%x)", r);
    CHECK(same_file(c.sock, &st_c) && serves(c.sock, 3), "C's socket survives B and C answers");

    /* the owner removes its own socket */
    r = fh_mediator_stop(&c, false);
    CHECK(exited_0(r), "C stops, exit 0 (0x%x)", r);
    CHECK(lstat(c.sock, &st) < 0 && errno == ENOENT, "and removes its own socket file");

    if (fh_failed) {
        fh_mediator_dump_log(&a, 60);
    }
    unlink(errfile);
    fh_mediator_cleanup(&c);
    fh_mediator_cleanup(&b);
    fh_mediator_cleanup(&a);
    return fh_summary();
}
