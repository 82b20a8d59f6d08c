#!/usr/bin/env python3
"""deploy/grafana's dashboard: valid JSON (python3 -m json.tool), every vgpu_*
metric its queries name is one that mediator/metrics.c exports, and every
query parses as PromQL (promtool check rules, the variables replaced; skipped
with a message when promtool is not installed).

usage: test-grafana.py DASHBOARD.json METRICS.c"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

dash_path, metrics_c = sys.argv[1], sys.argv[2]
fails = 0


def check(ok, what):
    global fails
    print(("ok - " if ok else "not ok - ") + what)
    fails += 0 if ok else 1


r = subprocess.run([sys.executable, "-m", "json.tool", dash_path], capture_output=True, text=True)
check(r.returncode == 0, f"python3 -m json.tool {os.path.basename(dash_path)} {r.stderr.strip()}")
if r.returncode:
    sys.exit(1)
dash = json.load(open(dash_path))
check(dash.get("title") and dash.get("uid") and dash.get("panels"), "a title, a uid and panels")

exprs = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
        walk(p.get("panels", []))
walk(dash["panels"])
for v in dash.get("templating", {}).get("list", []):
    if v.get("type") == "query":
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        exprs.append(("variable " + v["name"], re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q)))
check(len(exprs) >= 10, f"{len(exprs)} queries")

exported = set(re.findall(r'"(vgpu_[a-z_]+)', open(metrics_c).read()))
for title, e in exprs:
    names = {re.sub(r"_(bucket|sum|count)$", "", n) if re.sub(r"_(bucket|sum|count)$", "", n) in exported
             else n for n in re.findall(r"\b(vgpu_[a-z_]+)\b", e)}
    unknown = names - exported
    check(names and not unknown, f"{title}: metrics exported by metrics.c"
          + (f" (not: {', '.join(sorted(unknown))})" if unknown else ""))

promtool = shutil.which("promtool")
if not promtool:
    print("# SKIP PromQL syntax: promtool not installed (Debian package prometheus, scripts/deps.sh testtools)")
else:
    subst = {"$__rate_interval": "5m", "$__range": "1h", "$instance": ".*", "$vm": ".*"}
    rules = []
    for i, (title, e) in enumerate(exprs):
        for k, v in subst.items():
            e = e.replace(k, v)
        rules.append({"record": f"vgpu:dashboard_query_{i}", "expr": e})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)  # JSON is YAML
    r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    check(r.returncode == 0, f"promtool check rules: every query parses as PromQL "
          f"{(r.stdout + r.stderr).strip() if r.returncode else ''}")

print(f"{fails} failed")
sys.exit(1 if fails else 0)
