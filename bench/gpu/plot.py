#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR MIT
"""Draws the JSON of vgpu-bench-gpu as one PNG: native vs mediated time of
the compute cases (left) and host->GPU / round-trip bandwidth by size (right).

usage: plot.py RESULTS.json OUT.png
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        res = json.load(f)
    cases = [c for c in res["cases"] if not c.get("error")]
    compute = [c for c in cases if c["op"] in ("vector_add", "sgemm")]
    copies = [c for c in cases if c["op"].startswith("memcpy")]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5))
    labels = [f'{c["op"]}\n{c["size"]}' for c in compute]
    x = range(len(compute))
    w = 0.38
    ax1.bar([i - w / 2 for i in x], [c["native_us"] for c in compute], w, label="native (in process)")
    ax1.bar([i + w / 2 for i in x], [c["mediated_us"] for c in compute], w, label="mediated (vgpu)")
    for i, c in enumerate(compute):
        ax1.annotate(f'{c["ratio"]:.2f}x', (i + w / 2, c["mediated_us"]), ha="center",
                     va="bottom", fontsize=8)
    ax1.set_xticks(list(x))
    ax1.set_xticklabels(labels, fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("time per request, median (us, log)")
    ax1.set_title("compute: native vs mediated (ratio above bars)")
    ax1.legend()

    for op, style in (("memcpy_h2d", "-"), ("memcpy_roundtrip", "--")):
        sel = [c for c in copies if c["op"] == op]
        if not sel:
            continue
        sizes = [c["n"] / 2**20 for c in sel]
        ax2.plot(sizes, [c["native_gbps"] for c in sel], style, marker="o",
                 label=f"{op} native")
        ax2.plot(sizes, [c["mediated_gbps"] for c in sel], style, marker="s",
                 label=f"{op} mediated")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("bytes per request (MiB)")
    ax2.set_ylabel("GB/s (bytes / median request time)")
    ax2.set_title("host -> GPU bandwidth from guest shared memory")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)

    fig.suptitle(f'{res.get("gpu", "?")} - {res.get("date", "")}')
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
