#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR MIT
# Writes the seed corpora under tests/fuzz/corpus/ (committed; rerun only when
# the ABI or protocol changes). Layouts follow include/vgpu/{abi,protocol}.h.
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
D = 0x10000  # VGPU_SHM_DATA_OFFSET


def put(target, name, data):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- ops: sqe (64) + size selector (1) + claimed shm size (8)
def sqe(op, args, flags=0, tag=7, user=0x1234):
    a = args.ljust(48, b'\0')
    return struct.pack('<HHIQ', op, flags, tag, user) + a


def ops(name, op, args, sel=0, claimed=1 << 20):
    put('ops', name, sqe(op, args) + bytes([sel]) + struct.pack('<Q', claimed))


ops('nop', 0, b'')
ops('gpu_info', 1, struct.pack('<QQ', D, 112))
ops('vector_add', 2, struct.pack('<QQQQ', D, D + 4096, D + 8192, 1024))
ops('vector_add_alias', 2, struct.pack('<QQQQ', D, D + 4096, D, 1000), sel=1)
ops('saxpy', 3, struct.pack('<QQQfI', D, D + 65536, 16384, 2.0, 0))
ops('reduce_sum', 4, struct.pack('<QQ', D, 200000))
ops('sgemm', 5, struct.pack('<QQQIIIffI', D, D + 65536, D + 131072, 64, 48, 32, 1.0, 0.5, 0))
ops('sgemm_1x1', 5, struct.pack('<QQQIIIffI', D, D + 4, D + 8, 1, 1, 1, 1.0, 0.0, 0), sel=1)
ops('memcpy_roundtrip', 6, struct.pack('<QQQII', D, D + 0x40000, 0x40000, 0, 0))
ops('memcpy_h2d', 6, struct.pack('<QQQII', D, 0, 4096, 1, 0))
ops('memcpy_d2h_end', 6, struct.pack('<QQQII', 0, (1 << 20) + 4096 + 4 - 100, 100, 2, 0), sel=1)
# ABI 1.2: the CUDA driver operations (valid requests; the mutator breaks them).
DP = 0x7f0000000000  # a device address
ops('cu_device_info', 16, struct.pack('<QQ', D, 1056))
ops('cu_mem_get_info', 17, b'')
ops('cu_mem_alloc', 18, struct.pack('<QQ', 1 << 20, 0))
ops('cu_mem_free', 19, struct.pack('<QQ', 0, DP))
ops('cu_memset', 20, struct.pack('<QQIIII', DP, 4096, 0xdeadbeef, 4, 0, 0))
ops('cu_memcpy_htod', 21, struct.pack('<QQQII', DP, D + 64, 65536, 1, 0))
ops('cu_memcpy_dtoh_end', 22, struct.pack('<QQQII', (1 << 20) + 4096 + 4 - 100, DP, 100, 0, 0),
    sel=1)
ops('cu_memcpy_dtod', 23, struct.pack('<QQQII', DP, DP + 4096, 4096, 2, 0))
ops('cu_memcpy_2d', 24, struct.pack('<QQIIIIIBBH', DP, D, 512, 128, 100, 16, 0, 0, 1, 0))
ops('cu_memcpy_2d_shm', 24, struct.pack('<QQIIIIIBBH', D + 8192, D, 64, 64, 64, 64, 3, 1, 1, 0))
ops('cu_module_load', 25, struct.pack('<QQ', D, 4096))
ops('cu_module_unload', 26, struct.pack('<II', 1, 0))
ops('cu_get_function', 27, struct.pack('<QQIIII', D, D + 1024, 5, 24 + 8 * 1024, 1, 0))
ops('cu_get_global', 28, struct.pack('<QQIIII', D + 1, D + 64, 6, 16, 1, 0))
ops('cu_launch', 29, struct.pack('<IIIIIIIIIIQ', 1, 0, 4096, 1, 1, 256, 1, 1, 0, 20, D))
ops('cu_launch_noparams', 29, struct.pack('<IIIIIIIIIIQ', 3, 2, 1, 1, 1, 32, 32, 1, 49152, 0, 0))
ops('cu_stream_create', 30, struct.pack('<Ii', 1, -1))
ops('cu_stream_destroy', 31, struct.pack('<II', 2, 0))
ops('cu_stream_sync', 32, struct.pack('<II', 0, 0))
ops('cu_stream_query', 33, struct.pack('<II', 2, 0))
ops('cu_stream_wait_event', 34, struct.pack('<IIII', 2, 3, 0, 0))
ops('cu_event_create', 35, struct.pack('<Ii', 2, 0))
ops('cu_event_destroy', 36, struct.pack('<II', 3, 0))
ops('cu_event_record', 37, struct.pack('<IIII', 3, 0, 0, 0))
ops('cu_event_sync', 38, struct.pack('<II', 3, 0))
ops('cu_event_query', 39, struct.pack('<II', 3, 0))
ops('cu_event_elapsed', 40, struct.pack('<IIII', 3, 4, 0, 0))
ops('cu_ctx_sync', 41, b'')
ops('cu_func_get_attr', 42, struct.pack('<IiiI', 1, 0, 0, 0))
ops('cu_func_set_attr', 43, struct.pack('<IiiI', 1, 8, 65536, 0))
ops('cu_occupancy', 44, struct.pack('<IiiI', 1, 256, 1024, 0))
ops('cu_ctx_reset', 45, b'')


# ---- msg: [state][fd bits] + stream
def hdr(t, size, seq=1):
    return struct.pack('<HHIII', t, 0, size, seq, 0)


def hello(prio=0, weight=1, name=b'vm-one'):
    return hdr(1, 112) + struct.pack('<HHIIIIIQ', 1, 0, 1 << 16, 1, prio, weight, 0,
                                     64 << 20) + name.ljust(64, b'\0')


def kick(tail=1):
    return hdr(3, 24, 2) + struct.pack('<II', tail, 0)


def bye(reason=0):
    return hdr(5, 24, 3) + struct.pack('<II', reason, 0)


def error(code=2, text=b'bad thing'):
    return hdr(6, 144, 4) + struct.pack('<II', code, 9) + text.ljust(120, b'\0')


NEW, ADMIN, ACTIVE = 0, 1, 2
fd1 = 1  # first message carries one fd
put('msg', 'hello_kick_bye', bytes([NEW, fd1]) + hello() + kick() + kick(5) + bye())
put('msg', 'stats_req', bytes([NEW, 0]) + hdr(7, 16) + hdr(7, 16, 2))
put('msg', 'active_kick_error', bytes([ACTIVE, 0]) + kick(3) + error())
put('msg', 'hello_bad_version', bytes([NEW, fd1]) + hdr(1, 112) +
    struct.pack('<HHIIIIIQ', 2, 0, 1 << 16, 1, 0, 1, 0, 1 << 20) + b'\0' * 64)
put('msg', 'hello_bad_weight', bytes([NEW, fd1]) + hello(weight=0))
put('msg', 'hello_name_unterminated', bytes([NEW, fd1]) + hello(name=b'\x01\xff' * 32))
put('msg', 'error_text_full', bytes([ADMIN, 0]) + error(text=b'x' * 120))
put('msg', 'oversize', bytes([NEW, 0]) + hdr(8, 65536))
# 1.4: the HELLO that carries the queue pairs (120 bytes), a bad count, a size between.
put('msg', 'hello_queues', bytes([NEW, fd1]) + hdr(1, 120) + hello()[16:] +
    struct.pack('<II', 4, 0) + kick() + bye())
put('msg', 'hello_queues_bad', bytes([NEW, fd1]) + hdr(1, 120) + hello()[16:] +
    struct.pack('<II', 65, 0))
put('msg', 'hello_116', bytes([NEW, fd1]) + hdr(1, 116) + hello()[16:] + b'\0' * 4)

# ---- ring: script of actions (see fuzz_ring.c enum action)
SUBMIT, COMPLETE, WAIT, CQ_TAIL, SQ_HEAD, CQE, GUEST_IDX = range(7)
put('ring', 'honest', bytes([SUBMIT, 5, COMPLETE, WAIT, COMPLETE, COMPLETE, WAIT, WAIT,
                             WAIT, COMPLETE, COMPLETE, WAIT, WAIT, WAIT]))
put('ring', 'full', bytes([SUBMIT, 7] * 40 + [COMPLETE, WAIT] * 20 + [SUBMIT, 7] * 4))
put('ring', 'cq_tail_far', bytes([SUBMIT, 3, CQ_TAIL]) + struct.pack('<I', 0x1000) +
    bytes([WAIT, CQ_TAIL]) + struct.pack('<I', 2) + bytes([WAIT, WAIT, WAIT]))
put('ring', 'sq_head_behind', bytes([SUBMIT, 4, SQ_HEAD]) + struct.pack('<I', 0xfffffff0) +
    bytes([SUBMIT, 2, COMPLETE, WAIT]))
put('ring', 'cqe_garbage', bytes([SUBMIT, 2, CQE, 0]) + b'\xff' * 32 +
    bytes([CQ_TAIL]) + struct.pack('<I', 1) + bytes([WAIT, GUEST_IDX]) + b'\x10' * 8 +
    bytes([WAIT]))

# ---- session: [max_inflight][queues - 1], then per queue [u32 base index]
# [honest: even], then a script (see fuzz_session.c enum action); actions on
# one queue name it in the byte after the action.
S_SUBMIT, S_KICK, S_EXEC, S_CONSUME, S_RESTART, S_SQ_TAIL, S_CQ_HEAD, S_SQE, S_HOST_IDX, \
    S_WINDOW = range(10)


def sub(n=1, op=0, q=0):
    return bytes([S_SUBMIT, q, n - 1, op])


def ex(n=1):
    return bytes([S_EXEC, n - 1])


def cons(n, q=0):
    return bytes([S_CONSUME, q, n])


def sess(name, inflight, base, script, nq=1):
    head = bytes([inflight, nq - 1]) + (struct.pack('<I', base) + b'\0') * nq
    put('session', name, head + script)


K = bytes([S_KICK])
# max_inflight is 1 + byte % 64: 3 gives 4, 63 the largest, 64.
sess('honest', 3, 0, sub(6) + K + ex(2) + cons(7) + K + ex(5) + cons(7))
sess('rejects', 7, 0, sub(3, 1) + sub(2, 5) + sub(1, 7) + K + ex(8) + cons(8))
sess('restart_midway', 7, 0xfffffff0, sub(6) + K + ex() + bytes([S_RESTART]) +
     ex() + K + ex(2) + cons(7) + ex(3) + cons(7))
sess('cq_full', 63, 0, (sub(40) + K + ex(40)) * 7 + cons(255))
sess('hostile_tail', 7, 5, sub(3) + bytes([S_SQ_TAIL, 0]) + struct.pack('<I', 0x10000) +
     K + ex() + bytes([S_SQ_TAIL, 0]) + struct.pack('<I', 6) + K + ex())
sess('hostile_cq_head', 7, 0, sub(4) + K + bytes([S_CQ_HEAD, 0]) +
     struct.pack('<I', 0x80000000) + K + ex(2) + bytes([S_RESTART, S_KICK]) + ex())
sess('torn_restart', 7, 0, sub(2) + K + ex() + bytes([S_HOST_IDX, 0]) +
     struct.pack('<II', 0, 1) + bytes([S_RESTART, S_KICK]) + ex(2))
# A guest that jumps sq_tail a full ring ahead while 200 CQEs are unconsumed.
sess('sq_tail_jump', 63, 0, (sub(50) + K + ex(50)) * 4 +
     bytes([S_SQ_TAIL, 0]) + struct.pack('<I', 200 + 256) + bytes([S_KICK, S_KICK]) + ex(64) +
     bytes([S_KICK] * 4))
sess('hostile_sqe', 7, 0, sub(2) + bytes([S_SQE, 0, 1]) +
     sqe(2, struct.pack('<QQQQ', D, D, D, 4)) + K + ex(2))
# ABI 1.2: three queue pairs, taken round-robin; queue 2's guest corrupts its
# sq_tail and its window while queues 0 and 1 complete in order; a restart
# resumes every queue.
sess('multiqueue', 15, 0, sub(5, 0, 0) + sub(5, 0, 1) + sub(5, 0, 2) + K + ex(4) +
     bytes([S_SQ_TAIL, 2]) + struct.pack('<I', 0x7000) +
     bytes([S_WINDOW, 1]) + struct.pack('<QQ', 0xfffffffffffffff0, 0x100) + K + ex(6) +
     cons(9, 0) + cons(9, 1) + sub(3, 2, 1) + K + bytes([S_RESTART]) + K + ex(64) +
     cons(9, 0) + cons(9, 1), nq=3)
sys.exit(0)
