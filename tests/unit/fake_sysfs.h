/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A fake sysfs device directory for the unit tests of the pci and ivshmem
 * transports (VGPU_PCI_SYSFS points libvgpu at it): attribute files, and
 * regular files that mmap as the BARs do. Include after cmocka.h.
 */
#ifndef VGPU_TESTS_FAKE_SYSFS_H
#define VGPU_TESTS_FAKE_SYSFS_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static inline void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static inline void *map_file(const char *dir, const char *name, size_t size)
{
    char path[256];
    void *p;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(p != MAP_FAILED);
    return p;
}

#endif /* VGPU_TESTS_FAKE_SYSFS_H */
