#!/usr/bin/env python3
"""Turns bench/run's raw tab-separated results into bench/RESULTS.md.

Every figure is reported beside the baseline measured in the same run and
their ratio; targets are judged on those ratios, never on absolute numbers.
"""
import argparse
import datetime
import platform
import re
import resource
import statistics
import subprocess


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return nproc, cpu, mem_kib / 1024 / 1024


def yes(ok):
    return "**met**" if ok else "**not met**"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("out")
    ap.add_argument("--command", required=True)
    ap.add_argument("--load-before", required=True)
    ap.add_argument("--load-after", required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--sessions", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--sweep-seeds", required=True)
    a = ap.parse_args()

    sessions, cpu_ms, wrk, sweep, memory, check = {}, {}, {}, {}, [], []
    with open(a.raw) as f:
        for line in f:
            r = line.rstrip("\n").split("\t")
            if r[0] == "sessions":
                sessions[(r[1], int(r[2]))] = (float(r[5]), int(r[6]))
            elif r[0] == "cpu":
                cpu_ms[(r[1], int(r[2]))] = (float(r[3]), float(r[4]))
            elif r[0] == "wrk":
                wrk.setdefault(r[1], []).append(
                    (float(r[2]), float(r[3]), int(r[4]), int(r[5]), float(r[6])))
            elif r[0] == "sweep":
                # cores, jobs, seeds, seconds
                sweep.setdefault((int(r[1]), int(r[2])), []).append(
                    int(r[3]) / float(r[4]))
            elif r[0] == "memory":
                memory.append((int(r[1]), int(r[2]), int(r[3]), int(r[4])))
            elif r[0] == "check":
                check.append((float(r[1]), r[2]))

    nproc, cpu, mem_gib = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    o = []
    o.append("# kbsim benchmark results\n")
    o.append("Written by `%s` (bench/README.md says what each benchmark does)."
             " Every figure stands beside a baseline measured in the same run;"
             " read the ratios, not the absolute numbers.\n" % a.command)
    o.append("| machine | |\n|---|---|")
    o.append("| date | %s |" % now)
    o.append("| command | `%s` |" % a.command)
    o.append("| cores (nproc) | %s |" % nproc)
    o.append("| CPU | %s |" % cpu)
    o.append("| memory | %.1f GiB |" % mem_gib)
    o.append("| kernel | %s |" % platform.release())
    o.append("| load average before / after | %s / %s |" % (a.load_before, a.load_after))
    o.append("")
    try:
        busy = float(a.load_before.split()[0]) >= float(nproc)
    except ValueError:
        busy = False
    if busy:
        o.append("**This run shared the machine with other work (load average at"
                 " or above the core count): throughput and latency figures are"
                 " depressed and noisy; CPU time per request is the steadier"
                 " figure.**\n")
    o.append("A load average near or above the core count before the run means"
             " other work shared the cores: absolute figures then drop, the"
             " alternating comparisons stay fair.\n")

    targets = []

    # 1. sessions
    o.append("## 1. Communicator sessions per second\n")
    o.append("Autodiscover + 2 EWS POSTs per session, each POST a full NTLM"
             " handshake through the listener (integrated, per-request), against"
             " the same sessions straight to the backend (the ceiling). %s.\n" % a.sessions)
    o.append("| clients | through ISA (sessions/s) | direct to Exchange (sessions/s) | ratio | failed POSTs |")
    o.append("|---:|---:|---:|---:|---:|")
    ratio_at = {}
    for c in sorted({k[1] for k in sessions}):
        via, vf = sessions.get(("proxy", c), (0.0, 0))
        direct, df = sessions.get(("direct", c), (0.0, 0))
        ratio = via / direct if direct else 0.0
        ratio_at[c] = ratio
        o.append("| %d | %.0f | %.0f | %.2f | %d |" % (c, via, direct, ratio, vf + df))
    o.append("")
    if cpu_ms:
        o.append("Where a session's CPU time goes (the whole process, clients and"
                 " backend included, per completed session; the listener's share"
                 " is its event loop thread). A session through ISA makes 7"
                 " requests on the client hop (the anonymous autodiscover request"
                 " and every type 1 leg get a 401) and 3 upstream, against 3"
                 " straight to Exchange: the last column is the ratio the"
                 " protocol alone would allow if the listener cost nothing.\n")
        o.append("| clients | CPU ms/session through ISA | of which the listener | CPU ms/session direct | CPU ratio (direct / ISA) | without the listener's CPU |")
        o.append("|---:|---:|---:|---:|---:|---:|")
        for c in sorted({k[1] for k in cpu_ms}):
            isa, lis = cpu_ms.get(("proxy", c), (0.0, 0.0))
            d, _ = cpu_ms.get(("direct", c), (0.0, 0.0))
            if not isa or not d:
                continue
            o.append("| %d | %.3f | %.3f (%.0f%%) | %.3f | %.2f | %.2f |"
                     % (c, isa, lis, 100.0 * lis / isa, d, d / isa,
                        d / (isa - lis) if isa > lis else 0.0))
        o.append("\nWith one client, time is round trips, not CPU: through ISA a"
                 " session waits for 10 (7 to the listener, 3 of them forwarded"
                 " upstream), straight to Exchange for 3.\n")
    # Issue 33's: at 8 and at 64 clients, each.
    for c in (8, 64):
        r = ratio_at.get(c)
        if r is not None:
            targets.append(("Communicator sessions through ISA >= 0.65 x direct at %d clients" % c,
                            "%.2f" % r, r >= 0.65))

    # 2. wrk
    o.append("## 2. Pass-through against nginx\n")
    o.append("Same backend, same load generator and body (POST"
             " GetUserOofSettings, tests/data/oof-request.xml): %s. nginx %s,"
             " `upstream { keepalive 64; }`, `proxy_http_version 1.1`,"
             " `proxy_set_header Connection \"\"`. kbsim: the listener with"
             " authentication none. Backend alone: the third baseline.\n" % (a.wrk, a.nginx))
    o.append("| server | requests/s (median of rounds) | p99 latency ms (median) | CPU µs per request (median) | rounds | non-2xx | socket errors |")
    o.append("|---|---:|---:|---:|---:|---:|---:|")
    means = {}
    for name in ("kbsim", "nginx", "backend"):
        rows = wrk.get(name, [])
        if not rows:
            continue
        rps = statistics.median(r[0] for r in rows)
        p99 = statistics.median(r[1] for r in rows)
        cpu = statistics.median(r[4] for r in rows)
        means[name] = (rps, p99, cpu)
        o.append("| %s | %.0f | %.2f | %.1f | %d | %d | %d |" % (
            {"kbsim": "kbsim listener (auth none)", "nginx": "nginx (workers)",
             "backend": "backend alone"}[name], rps, p99, cpu, len(rows),
            sum(r[2] for r in rows), sum(r[3] for r in rows)))
    o.append("")
    if "kbsim" in means and "nginx" in means:
        kr, kp, kc = means["kbsim"]
        nr, np_, nc = means["nginx"]
        o.append("Ratios: kbsim/nginx requests/s **%.2f**, kbsim/nginx p99 **%.2f**"
                 " (lower is better), kbsim/nginx CPU per request **%.2f** (lower"
                 " is better; the proxy's own CPU time, which does not depend on"
                 " what else shares the cores; for the backend row it is the"
                 " backend's)." % (kr / nr, kp / np_, kc / nc))
        per_round = ["%.2f" % (k[0] / n[0]) for k, n in zip(wrk["kbsim"], wrk["nginx"])]
        o.append(" Per round (kbsim/nginx requests/s): %s." % ", ".join(per_round))
        if "backend" in means:
            br = means["backend"][0]
            o.append(" Against the backend alone: kbsim %.2f, nginx %.2f"
                     " (the backend is %s)." % (
                         kr / br, nr / br,
                         "not the bottleneck" if br > max(kr, nr) * 1.2
                         else "close to the bottleneck"))
        o.append("")
        targets.append(("pass-through requests/s >= nginx", "%.2f" % (kr / nr), kr >= nr))
        targets.append(("pass-through p99 <= nginx", "%.2f" % (kp / np_), kp <= np_))
        targets.append(("pass-through CPU per request <= nginx",
                        "%.2f" % (kc / nc), kc <= nc))

    # 3. sweep
    o.append("## 3. Sweep throughput\n")
    o.append("`kbsim sweep scenarios/intermittent-array.ini --seeds 1..%s`,"
             " pinned with taskset to 1 core (`--jobs 1`) and to 2 cores"
             " (`--jobs 1` and `--jobs 2`), each setting run twice,"
             " alternating. One run already keeps more than one core busy (8"
             " client threads, the array's listeners and Exchange's workers"
             " work at once), so `--jobs 1` on 2 cores is faster than on 1.\n"
             % a.sweep_seeds)
    o.append("| cores | --jobs | seeds/s (best run) | runs |")
    o.append("|---:|---:|---:|---|")
    for cores, jobs in sorted(sweep):
        runs = sweep[(cores, jobs)]
        o.append("| %d | %d | %.1f | %s |" % (cores, jobs, max(runs),
                                              ", ".join("%.1f" % v for v in runs)))
    if (1, 1) in sweep and (2, 2) in sweep:
        o.append("\nScaling from 1 to 2 cores (best runs, `--jobs` = cores):"
                 " **%.2f x** (2.00 would be perfect)."
                 % (max(sweep[(2, 2)]) / max(sweep[(1, 1)])))
    o.append("")

    # 4. memory
    o.append("## 4. Memory per concurrent session\n")
    o.append("Peak RSS (getrusage) of one process running N concurrent sessions"
             " through the in-process topology (clients, listener and backend"
             " together), one process per N.\n")
    o.append("| sessions | RSS after start (KiB) | peak RSS (KiB) | failed |")
    o.append("|---:|---:|---:|---:|")
    for n, before, peak, failed in memory:
        o.append("| %d | %d | %d | %d |" % (n, before, peak, failed))
    clean = [m for m in memory if not m[3]]
    if len(clean) >= 2:
        lo, hi = clean[0], max(clean, key=lambda m: m[0])
        slope = (hi[2] - lo[2]) / (hi[0] - lo[0])
        o.append("\nSlope: **%.0f KiB per concurrent session** (%d -> %d sessions)."
                 % (slope, lo[0], hi[0]))
        targets.append(("<= 64 KiB per concurrent session", "%.0f KiB" % slope,
                        slope <= 64))
        # bench/run's last row is bench_memory max: as many sessions as
        # the hard descriptor limit allows.
        most = hi[0]
        if hi is memory[-1]:
            said = ("%d (the most the hard descriptor limit of %d allows)"
                    % (most, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        else:
            said = "%d (the largest N this run ran without a failure)" % most
        targets.append(("10,000 concurrent sessions in one process", said,
                        most >= 10000))
    o.append("")

    # 5. make check
    o.append("## 5. `make check` wall time\n")
    o.append("`make -j%s check` in a fresh RelWithDebInfo build (build time not"
             " counted).\n" % nproc)
    o.append("| wall time (s) | result |")
    o.append("|---:|---|")
    for t, status in check:
        o.append("| %.1f | %s |" % (t, status))
    o.append("")
    if check:
        t = max(c[0] for c in check)
        targets.append(("make check < 20 s on %s cores" % nproc, "%.1f s" % t, t < 20))

    o.append("## Targets\n")
    o.append("| target | measured | verdict |")
    o.append("|---|---:|---|")
    for what, val, ok in targets:
        o.append("| %s | %s | %s |" % (what, val, yes(ok)))
    o.append("")
    # The sections other scripts write between their markers
    # (<!-- NAME begin --> ... <!-- NAME end -->) stay as they were.
    kept = []
    try:
        with open(a.out) as f:
            old = f.read()
        blocks = re.finditer(r"(<!-- ([a-z0-9-]+) begin -->.*?<!-- \2 end -->)",
                             old, re.S)
        kept = [m.group(1) for m in blocks]
    except FileNotFoundError:
        pass
    with open(a.out, "w") as f:
        f.write("\n".join(o))
        for block in kept:
            f.write("\n" + block + "\n")


if __name__ == "__main__":
    main()
