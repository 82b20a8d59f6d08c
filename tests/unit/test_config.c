/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The mediator's option parsers added for monitoring: --metrics-listen
 * ADDR:PORT, the admin socket's default path, and the options themselves.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mediator/mediator.h"

static void test_parse_listen(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    (void)state;

    assert_int_equal(vgpu_config_parse_listen("127.0.0.1:9400", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9400);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(vgpu_config_parse_listen("[::1]:80", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 80);
    assert_int_equal(vgpu_config_parse_listen(":9400", &ss, &len), 0);   /* every address */

    assert_int_equal(vgpu_config_parse_listen("127.0.0.1", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("127.0.0.1:", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("127.0.0.1:0", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("127.0.0.1:65536", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("127.0.0.1:94x", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("localhost:9400", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("::1:9400", &ss, &len), 0 /* ::1 port 9400 */);
    assert_int_equal(vgpu_config_parse_listen("[::1:9400", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("999.1.1.1:80", &ss, &len), -EINVAL);
    assert_int_equal(vgpu_config_parse_listen("", &ss, &len), -EINVAL);
}

static void test_admin_default(void **state)
{
    char buf[108], longp[120];
    (void)state;

    assert_int_equal(vgpu_config_admin_default("/run/vgpu/mediator.sock", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/run/vgpu/mediator-ro.sock");
    assert_int_equal(vgpu_config_admin_default("/tmp/x", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/tmp/x-ro");
    memset(longp, 'a', 104);
    strcpy(longp + 104, ".sock");   /* 109: "-ro" makes it too long */
    assert_int_equal(vgpu_config_admin_default(longp, buf, sizeof(buf)), -ENAMETOOLONG);
}

static int parse(struct vgpu_config *cfg, const char *a1, const char *a2, const char *a3)
{
    char *argv[] = { "vgpu-mediator", (char *)a1, (char *)a2, (char *)a3, NULL };
    int argc = 1 + (a1 != NULL) + (a2 != NULL) + (a3 != NULL);

    return vgpu_config_parse_args(cfg, argc, argv);
}

static void test_options(void **state)
{
    struct vgpu_config cfg;
    (void)state;

    assert_int_equal(parse(&cfg, "--socket-path", "/tmp/a.sock", NULL), 0);
    assert_string_equal(cfg.admin_socket_path, "/tmp/a-ro.sock");
    assert_int_equal(cfg.admin_socket_mode, 0666);
    assert_null(cfg.metrics_listen);
    assert_int_equal(parse(&cfg, "--admin-socket", "none", NULL), 0);
    assert_null(cfg.admin_socket_path);
    assert_int_equal(parse(&cfg, "--admin-socket-mode", "0640", NULL), 0);
    assert_int_equal(cfg.admin_socket_mode, 0640);
    assert_int_equal(parse(&cfg, "--metrics-listen", "127.0.0.1:9400", NULL), 0);
    assert_string_equal(cfg.metrics_listen, "127.0.0.1:9400");

    assert_int_equal(parse(&cfg, "--admin-socket-mode", "0999", NULL), -EINVAL);
    assert_int_equal(parse(&cfg, "--admin-socket-mode", "1777", NULL), -EINVAL);
    assert_int_equal(parse(&cfg, "--metrics-listen", "9400", NULL), -EINVAL);
    assert_int_equal(parse(&cfg, "--socket-path", "/tmp/a.sock", "--admin-socket=/tmp/a.sock"),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_admin_default),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
