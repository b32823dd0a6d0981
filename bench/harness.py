#!/usr/bin/env python3
"""deskgate's benchmark: deskgate against nginx (plain TLS proxy and a
reference-like config) and against the upstream directly, in one run, on
loopback. Run through bench/run, which installs the tools and builds first.

Every proxy runs one worker pinned to CPU 0; load tools and the upstream
run on CPU 1. Throughput is requests per proxy CPU-second, read from
/proc/<pid>/stat of the proxy process (all its threads). Latency is
measured at a fixed rate (oha -q). Rounds are interleaved (every scenario
on every peer, then again) and medians are reported.
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")
DESKGATE = os.environ.get("DESKGATE_BIN") or os.path.join(RELEASE, "deskgate")
LOADGEN = os.path.join(RELEASE, "deskgate-loadgen")
SIM = os.path.join(RELEASE, "finesse-sim")
TOOLS = os.path.join(BENCH, ".tools", "bin")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PROXY_CPU = "0"
LOAD_CPU = "1"
USERS = 1000
USER_BASE = 100000
LIMIT = 1_000_000  # rate/burst the fixed-header tools cannot trip
KEEPALIVE_REQUESTS = 1_000_000  # no connection recycling inside a measurement (deskgate and nginx alike)
SECRET = "bench-secret-made-per-run"

STATIC_PATH = "/desktop/js/app.js"
REST_BODY = (
    "<User><loginId>{id}</loginId><firstName>Bench</firstName><lastName>Agent</lastName>"
    "<roles><role>Agent</role></roles><state>NOT_READY</state><reasonCodeId>-1</reasonCodeId>"
    "<teamId>1</teamId><teamName>Bench</teamName><extension>5001</extension>"
    "<settings><wrapUpOnIncoming>OPTIONAL</wrapUpOnIncoming></settings>"
    "<mediaType>1</mediaType><stateChangeTime>2026-12-01T00:00:00.000Z</stateChangeTime>"
    "<pendingState></pendingState><dialogs>/finesse/api/User/{id}/Dialogs</dialogs>"
    "<uri>/finesse/api/User/{id}</uri></User>"
).replace("{id}", "100001")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(template, values):
    text = open(os.path.join(BENCH, "conf", template)).read()
    for k, v in values.items():
        text = text.replace("{" + k + "}", str(v))
    left = re.findall(r"\{[A-Z_]+\}", text)
    if left:
        sys.exit(f"bench: {template}: unfilled {left}")
    return text


def basic(user):
    raw = f"{user}:pw-{user}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def wait_port(port, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: {what} did not listen on {port}")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Peer:
    """One server under test: its process, and the PID whose CPU counts."""

    def __init__(self, name, port, proc, measured_pid):
        self.name = name
        self.port = port
        self.proc = proc
        self.pid = measured_pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_nginx(name, conf_text, port, d):
    path = os.path.join(d, f"{name}.nginx.conf")
    with open(path, "w") as f:
        f.write(conf_text)
    proc = subprocess.Popen(
        [NGINX, "-c", path, "-p", d, "-g", "daemon off;"],
        stdout=open(os.path.join(d, f"{name}.out"), "w"),
        stderr=subprocess.STDOUT,
    )
    wait_port(port, name)
    workers = []
    end = time.time() + 10
    while not workers and time.time() < end:
        workers = children(proc.pid)
        time.sleep(0.05)
    if len(workers) != 1:
        sys.exit(f"bench: {name}: expected one nginx worker, found {workers}")
    return Peer(name, port, proc, workers[0])


class Run:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="deskgate-bench-")
        self.peers = {}
        self.results = []  # dicts: round, scenario, peer, metrics

    # ---- setup -------------------------------------------------------
    def setup(self):
        d = self.dir
        # nginx's workers run as an unprivileged user: they must read the files
        os.chmod(d, 0o755)
        os.makedirs(os.path.join(d, "www", "desktop", "js"))
        # a 600-byte static file
        body = ("/* deskgate bench static file */\n" + "x" * 600)[:599] + "\n"
        with open(os.path.join(d, "www", "desktop", "js", "app.js"), "w") as f:
            f.write(body)
        self.ports = {
            "origin_http": free_port(),
            "origin_tls": free_port(),
            "deskgate": free_port(),
            "plain": free_port(),
            "reference": free_port(),
            "internal": free_port(),
            "sim": free_port(),
            "sim_proxy": free_port(),
            "agents": free_port(),
        }
        p = self.ports
        common = {
            "DIR": d,
            "CERT": os.path.join(d, "certs", "front.pem"),
            "KEY": os.path.join(d, "certs", "front.key"),
            "ORIGIN_HTTP": p["origin_http"],
            "ORIGIN_TLS": p["origin_tls"],
            "KEEPALIVE_REQUESTS": KEEPALIVE_REQUESTS,
            "RATE": LIMIT,
            "BURST": LIMIT,
            "PROXY_CPU_MASK": "01",
            "ORIGIN_CPU_MASK": "10",
        }
        dg = fill(
            "deskgate.toml",
            dict(
                common,
                PORT=p["deskgate"],
                INTERNAL=p["internal"],
                CONN_LIMIT_PER_NAT=1000,
            ),
        )
        dg = dg.replace(f'cert = "{common["CERT"]}"', 'cert = "certs/front.pem"').replace(
            f'key_file = "{common["KEY"]}"', 'key_file = "certs/front.key"'
        )
        dg_path = os.path.join(d, "deskgate.toml")
        with open(dg_path, "w") as f:
            f.write(dg)
        subprocess.run([DESKGATE, "gen-certs", "-c", dg_path], check=True, capture_output=True)
        subprocess.run([DESKGATE, "check", "-c", dg_path], check=True, capture_output=True)

        origin = fill("origin.nginx.conf", dict(common, REST_BODY=REST_BODY))
        self.origin = start_nginx("origin", origin, p["origin_http"], d)
        wait_port(p["origin_tls"], "origin (TLS)")
        self.peers["direct"] = Peer("direct", p["origin_tls"], self.origin.proc, self.origin.pid)
        self.peers["nginx-plain"] = start_nginx(
            "plain",
            fill("plain.nginx.conf", dict(common, PORT=p["plain"], SIM=p["sim"], SIM_PROXY_PORT=p["sim_proxy"])),
            p["plain"],
            d,
        )
        self.peers["nginx-ref"] = start_nginx(
            "reference",
            fill(
                "reference.nginx.conf",
                dict(common, PORT=p["reference"], SECRET=SECRET, CONN_LIMIT=1000),
            ),
            p["reference"],
            d,
        )
        proc = subprocess.Popen(
            ["taskset", "-c", PROXY_CPU, DESKGATE, "run", "-c", dg_path, "--side", "a", "--workers", "1"],
            stdout=open(os.path.join(d, "deskgate.out"), "w"),
            stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG="warn"),
        )
        wait_port(p["deskgate"], "deskgate")
        self.peers["deskgate"] = Peer("deskgate", p["deskgate"], proc, proc.pid)
        self.warm()
        if self.args.agents or self.args.ws:
            self.start_agent_peers(common)

    def start_agent_peers(self, common):
        """The simulator (upstream of the agent runs) and a deskgate with
        production defaults in front of it; nginx-plain's second server
        already proxies to it."""
        d, p = self.dir, self.ports
        self.sim = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, SIM, "--listen", f"127.0.0.1:{p['sim']}",
             "--name", f"127.0.0.1:{p['sim']}", "--cert", common["CERT"], "--key", common["KEY"],
             "--agents", str(max(self.args.agents, self.args.ws) + 100),
             "--presence-grace", "3600"],
            stdout=open(os.path.join(d, "sim.out"), "w"), stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG="warn"),
        )
        wait_port(p["sim"], "finesse-sim")
        conf = fill("agents.toml", dict(common, PORT=p["agents"], SIM=p["sim"], CA=os.path.join(d, "certs", "ca.pem")))
        path = os.path.join(d, "agents.toml")
        with open(path, "w") as f:
            f.write(conf)
        proc = subprocess.Popen(
            ["taskset", "-c", PROXY_CPU, DESKGATE, "run", "-c", path, "--side", "a", "--workers", "1"],
            stdout=open(os.path.join(d, "agents-deskgate.out"), "w"), stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG="warn"),
        )
        wait_port(p["agents"], "deskgate (agents)")
        self.agent_peers = {
            "deskgate": Peer("deskgate", p["agents"], proc, proc.pid),
            "nginx-plain": Peer("nginx-plain", p["sim_proxy"], self.peers["nginx-plain"].proc, self.peers["nginx-plain"].pid),
        }

    def loadgen(self, sub, peer, extra, first):
        port = self.agent_peers[peer].port
        return [
            "taskset", "-c", LOAD_CPU, LOADGEN, sub, "--connect", f"127.0.0.1:{port}",
            "--host", f"127.0.0.1:{port}", "--ca", os.path.join(self.dir, "certs", "ca.pem"),
            "--first", str(first), *extra,
        ]

    def idle_ws(self, rnd):
        """RSS per idle proxied WebSocket (client TLS and the upstream side)."""
        n = self.args.ws
        for peer in ["deskgate", "nginx-plain"]:
            pid = self.agent_peers[peer].pid
            before = rss_kib(pid)
            # each round and peer its own agents: the simulator keeps sessions per user
            proc = subprocess.Popen(
                self.loadgen("ws-idle", peer, ["--count", str(n), "--ip-net", str(60 + rnd)], 1001),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            line = proc.stdout.readline().strip()
            time.sleep(1)
            after = rss_kib(pid)
            proc.stdin.close()
            err = proc.stderr.read()
            proc.wait(timeout=60)
            if not line.startswith("ready"):
                log(f"ws-idle through {peer} failed: {line} {err.strip()[:300]}")
                continue
            opened = int(line.split()[1])
            per = (after - before) / max(opened, 1)
            self.results.append(dict(round=rnd, scenario="idle WebSocket RSS", peer=peer, ok=opened,
                                     errors=n - opened, kib_per_ws=per, cpu_s=0, req_per_cpu_s=0,
                                     rss_kib=after, hwm_kib=rss_kib(pid, "VmHWM")))
            log(f"r{rnd} idle WebSockets       {peer:<12} {opened} open, RSS {before} -> {after} KiB: {per:.1f} KiB each")
            # let the proxy see the closes before the next measurement
            time.sleep(2)

    def agents_run(self, rnd):
        """storm-N-T then steady for --steady seconds, through each proxy."""
        n, window, steady = self.args.agents, self.args.storm_window, self.args.steady
        for peer in ["deskgate", "nginx-plain"]:
            pid = self.agent_peers[peer].pid
            before = cpu_ticks(pid)
            t0 = time.time()
            out = subprocess.run(
                self.loadgen("agents", peer, ["--agents", str(n), "--login-window", str(window),
                                              "--duration", str(steady), "--ip-net", str(80 + rnd)], 1001),
                capture_output=True, text=True,
            )
            cpu = (cpu_ticks(pid) - before) / CLK_TCK
            if out.returncode != 0:
                log(f"agents through {peer} failed: {out.stderr.strip()[:300]}")
                continue
            try:
                m = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                log(f"agents through {peer}: unreadable output {out.stdout[:300]}")
                continue
            m.update(round=rnd, scenario=f"agents storm-{n}-{window} + steady {steady}s", peer=peer,
                     ok=m["requests"], cpu_s=cpu, wall_s=time.time() - t0,
                     req_per_cpu_s=m["requests"] / cpu if cpu else 0,
                     cpu_ms_per_agent=1000 * cpu / max(n, 1),
                     rss_kib=rss_kib(pid), hwm_kib=rss_kib(pid, "VmHWM"))
            self.results.append(m)
            log(f"r{rnd} agents {peer:<12} logins {m['logins_ok']}/{n} p50 {m['login_p50_ms']:.0f} p99 {m['login_p99_ms']:.0f} ms, "
                f"ping p99 {m['ping_p99_ms']:.1f} ms, errors {m['errors']} {m['error_kinds']}, cpu {cpu:.1f}s, peak RSS {m['hwm_kib']} KiB")

    def warm(self):
        """Every user signs in once through each authenticating proxy (the
        runs measure the credential cache, not Finesse), and the static
        file is fetched once (deskgate's cache; nginx has none)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for name in ["deskgate", "nginx-ref", "nginx-plain", "direct"]:
            port = self.peers[name].port
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            bad = 0
            for i in range(1, USERS + 1):
                uid = USER_BASE + i
                ip = f"10.9.{i // 250}.{i % 250 + 1}"
                conn.request(
                    "GET",
                    f"/finesse/api/User/{uid}",
                    headers={"Authorization": basic(uid), "X-Real-IP": ip},
                )
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    bad += 1
                    log(f"warm-up through {name}: user {uid} got {r.status}")
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            conn.request("GET", STATIC_PATH)
            r = conn.getresponse()
            r.read()
            bad += r.status != 200
            conn.close()
            if bad:
                sys.exit(f"bench: warm-up through {name}: {bad} answers were not 200")
        log(f"warm: {USERS} users signed in through every peer")

    # ---- tools -------------------------------------------------------
    def url(self, peer, path):
        return f"https://127.0.0.1:{self.peers[peer].port}{path}"

    def tool_cmd(self, tool, peer, target, duration):
        """The load tool's command line and the parser of its output."""
        fixed = ["-H", "X-Real-IP: 10.9.0.1"]
        auth = ["-H", f"Authorization: {basic(USER_BASE + 1)}"] if target == "rest" else []
        path = STATIC_PATH if target == "static" else f"/finesse/api/User/{USER_BASE + 1}"
        url = self.url(peer, path)
        d = str(duration)
        if tool == "wrk-h1":
            cmd = ["wrk", "-t1", "-c64", f"-d{d}s", "--latency", url]
            if target == "rest":
                cmd[1:1] = ["-s", os.path.join(BENCH, "conf", "rotate.lua")]
            else:
                cmd[1:1] = fixed
            return cmd, parse_wrk
        if tool == "wrk-h1-close":
            # a new TLS connection for every request
            return ["wrk", "-t1", "-c16", f"-d{d}s", "-H", "Connection: close", *fixed, *auth, url], parse_wrk
        if tool == "h2load-h2":
            return ["h2load", "-c16", "-m16", "-t1", "-D", d, *fixed, *auth, url], parse_h2load
        if tool in ("oha-h1-q", "oha-h2-q"):
            proto = ["--http2"] if tool == "oha-h2-q" else []
            return (
                [os.path.join(TOOLS, "oha"), "--no-tui", "--insecure", "--output-format", "json",
                 "-z", f"{d}s", "-c", "16", "-q", str(self.args.rate), "--latency-correction",
                 *proto, *fixed, *auth, url],
                parse_oha,
            )
        raise ValueError(tool)

    def measure(self, rnd, scenario, tool, target, peer):
        cmd, parse = self.tool_cmd(tool, peer, target, self.args.duration)
        pid = self.peers[peer].pid
        before = cpu_ticks(pid)
        t0 = time.time()
        out = subprocess.run(["taskset", "-c", LOAD_CPU, *cmd], capture_output=True, text=True)
        wall = time.time() - t0
        cpu = (cpu_ticks(pid) - before) / CLK_TCK
        if out.returncode != 0:
            log(f"{tool} on {peer} failed: {out.stderr.strip()[:400]}")
            return
        m = parse(out.stdout)
        m["cpu_s"] = cpu
        m["wall_s"] = wall
        m["req_per_cpu_s"] = m["ok"] / cpu if cpu > 0 else 0.0
        m["rss_kib"] = rss_kib(pid)
        m["hwm_kib"] = rss_kib(pid, "VmHWM")
        self.results.append(dict(round=rnd, scenario=scenario, peer=peer, **m))
        log(
            f"r{rnd} {scenario:<22} {peer:<12} ok={m['ok']:>8} err={m['errors']:>5} "
            f"cpu={cpu:6.2f}s  req/cpu-s={m['req_per_cpu_s']:>9.0f}  p50={m.get('p50_ms', 0):.2f}ms p99={m.get('p99_ms', 0):.2f}ms"
        )

    # ---- scenarios ---------------------------------------------------
    def micro_round(self, rnd):
        scenarios = [
            ("static h1 keep-alive", "wrk-h1", "static"),
            ("static h2", "h2load-h2", "static"),
            ("static h1 new TLS", "wrk-h1-close", "static"),
            ("static h1 p99@rate", "oha-h1-q", "static"),
            ("static h2 p99@rate", "oha-h2-q", "static"),
            ("rest h1 keep-alive", "wrk-h1", "rest"),
            ("rest h2", "h2load-h2", "rest"),
            ("rest h1 new TLS", "wrk-h1-close", "rest"),
            ("rest h1 p99@rate", "oha-h1-q", "rest"),
            ("rest h2 p99@rate", "oha-h2-q", "rest"),
        ]
        peers = ["deskgate", "nginx-plain", "nginx-ref", "direct"]
        for scenario, tool, target in scenarios:
            # interleaved, and in a different order each round
            order = peers[rnd % len(peers):] + peers[: rnd % len(peers)]
            for peer in order:
                self.measure(rnd, scenario, tool, target, peer)

    def profile(self, spec):
        """perf (cpu-clock samples) of deskgate during one tool run: the
        flat report, by symbol, goes to profile-<tool>-<target>.txt."""
        tool, target = spec.split(":")
        data = os.path.join(self.dir, "perf.data")
        perf = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "1999", "--call-graph", "fp", "-o", data,
             "-p", str(self.peers["deskgate"].pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        self.measure(0, f"profile {tool} {target}", tool, target, "deskgate")
        perf.send_signal(signal.SIGINT)
        perf.wait()
        out = os.path.join(self.dir, f"profile-{tool}-{target}.txt")
        with open(out, "w") as f:
            subprocess.run(
                ["perf", "report", "-i", data, "--children", "--sort", "symbol",
                 "--stdio", "-g", "none", "--percent-limit", "0.5"],
                stdout=f, stderr=subprocess.DEVNULL,
            )
        log(f"profile written to {out}")

    def cleanup(self):
        for p in self.peers.values():
            p.stop()
        for p in getattr(self, "agent_peers", {}).values():
            p.stop()
        if getattr(self, "sim", None):
            self.sim.terminate()
            self.sim.wait(timeout=10)
        if getattr(self, "origin", None):
            self.origin.stop()


def parse_wrk(out):
    ok = 0
    m = re.search(r"(\d+) requests in", out)
    total = int(m.group(1)) if m else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(non2xx.group(1)) if non2xx else 0
    sock = sum(int(x) for x in errs.groups()) if errs else 0
    ok = total - bad

    def pct(label):
        mm = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not mm:
            return 0.0
        v, unit = float(mm.group(1)), mm.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"ok": ok, "errors": bad + sock, "p50_ms": pct("50"), "p99_ms": pct("99")}


def parse_h2load(out):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    ok = int(codes.group(1)) if codes else 0
    bad = (int(codes.group(3)) + int(codes.group(4))) if codes else 0
    errs = (int(m.group(6)) + int(m.group(7))) if m else 0
    return {"ok": ok, "errors": bad + errs}


def parse_oha(out):
    j = json.loads(out)
    codes = j.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    bad = sum(v for k, v in codes.items() if not k.startswith("2"))
    # requests still in flight when the time is up are not failures
    errs = sum(v for k, v in j.get("errorDistribution", {}).items() if "deadline" not in k)
    lat = j.get("latencyPercentiles", {})
    return {
        "ok": ok,
        "errors": bad + errs,
        "p50_ms": (lat.get("p50") or 0) * 1000,
        "p99_ms": (lat.get("p99") or 0) * 1000,
    }


def median(xs):
    return statistics.median(xs) if xs else 0.0


def table(results):
    """Medians per (scenario, peer), and deskgate's ratios."""
    scen = []
    for r in results:
        if r["scenario"] not in scen:
            scen.append(r["scenario"])
    peers = ["deskgate", "nginx-plain", "nginx-ref", "direct"]
    rows = []
    for s in scen:
        med = {}
        for p in peers:
            rs = [r for r in results if r["scenario"] == s and r["peer"] == p]
            med[p] = {
                "rps_cpu": median([r["req_per_cpu_s"] for r in rs]),
                "p50": median([r.get("p50_ms", 0) for r in rs]),
                "p99": median([r.get("p99_ms", 0) for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "hwm": max([r["hwm_kib"] for r in rs], default=0),
                "n": len(rs),
            }
        # deskgate against each peer round by round (each round measures
        # every peer within the same minute, so drift between rounds cancels)
        paired = {}
        for p in peers[1:]:
            tput, p99 = [], []
            for rnd in sorted({r["round"] for r in results if r["scenario"] == s}):
                one = {r["peer"]: r for r in results if r["scenario"] == s and r["round"] == rnd}
                d, o = one.get("deskgate"), one.get(p)
                if not d or not o:
                    continue
                if o["req_per_cpu_s"]:
                    tput.append(d["req_per_cpu_s"] / o["req_per_cpu_s"])
                if d.get("p99_ms"):
                    p99.append(o.get("p99_ms", 0) / d["p99_ms"])
            paired[p] = {"rps_cpu": tput, "p99": p99}
        med["paired"] = paired
        rows.append((s, med))
    return rows


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"


def paired_ratio(values):
    """The median of the per-round ratios, and their range."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}x"
    return f"{median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def render_agents(results):
    """The idle-WebSocket and agent figures, medians over rounds."""
    lines = []
    ws = [r for r in results if r["scenario"] == "idle WebSocket RSS"]
    if ws:
        lines.append("| idle proxied WebSocket (client TLS + upstream TLS) | deskgate | nginx plain | deskgate vs nginx |")
        lines.append("|---|---|---|---|")
        med = {p: median([r["kib_per_ws"] for r in ws if r["peer"] == p]) for p in ["deskgate", "nginx-plain"]}
        opened = {p: max([r["ok"] for r in ws if r["peer"] == p], default=0) for p in med}
        lines.append(
            f"| RSS per socket ({opened['deskgate']} sockets) | {med['deskgate']:.1f} KiB | {med['nginx-plain']:.1f} KiB "
            f"| {ratio(med['deskgate'], med['nginx-plain'])} |"
        )
        lines.append("")
    ag = [r for r in results if r["scenario"].startswith("agents")]
    if ag:
        name = ag[0]["scenario"]
        lines.append(f"| {name} | deskgate | nginx plain |")
        lines.append("|---|---|---|")

        def row(label, key, fmt):
            cells = []
            for p in ["deskgate", "nginx-plain"]:
                vals = [r[key] for r in ag if r["peer"] == p]
                cells.append(fmt(median(vals)) if vals else "-")
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")

        row("logins completed (of each run)", "logins_ok", lambda v: f"{v:.0f}")
        row("errors (all runs)", "errors", lambda v: f"{v:.0f}")
        row("login time p50", "login_p50_ms", lambda v: f"{v:.0f} ms")
        row("login time p99", "login_p99_ms", lambda v: f"{v:.0f} ms")
        row("XMPP ping p50", "ping_p50_ms", lambda v: f"{v:.1f} ms")
        row("XMPP ping p99", "ping_p99_ms", lambda v: f"{v:.1f} ms")
        row("REST p99", "rest_p99_ms", lambda v: f"{v:.1f} ms")
        row("proxy CPU per agent (login + steady)", "cpu_ms_per_agent", lambda v: f"{v:.1f} ms")
        row("requests per proxy CPU-second", "req_per_cpu_s", lambda v: f"{v:,.0f}")
        row("peak RSS of the proxy", "hwm_kib", lambda v: f"{v / 1024:.0f} MiB")
    return "\n".join(lines)


def render(rows, args, cmdline):
    lines = []
    lines.append("| scenario | deskgate | nginx plain | nginx reference-like | direct | vs plain | vs reference | vs direct |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for s, m in rows:
        dg = m["deskgate"]
        if "p99" in s:
            cell = lambda p: f"p50 {m[p]['p50']:.2f} / p99 {m[p]['p99']:.2f} ms" + (f" ({m[p]['errors']} err)" if m[p]["errors"] else "")
            r = lambda p: paired_ratio(m["paired"][p]["p99"])
            lines.append(
                f"| {s} (rate {args.rate}/s) | {cell('deskgate')} | {cell('nginx-plain')} | {cell('nginx-ref')} | {cell('direct')} "
                f"| {r('nginx-plain')} | {r('nginx-ref')} | {r('direct')} |"
            )
        else:
            cell = lambda p: f"{m[p]['rps_cpu']:,.0f}" + (f" ({m[p]['errors']} err)" if m[p]["errors"] else "")
            lines.append(
                f"| {s} (req/CPU-s) | {cell('deskgate')} | {cell('nginx-plain')} | {cell('nginx-ref')} | {cell('direct')} "
                f"| {paired_ratio(m['paired']['nginx-plain']['rps_cpu'])} | {paired_ratio(m['paired']['nginx-ref']['rps_cpu'])} "
                f"| {paired_ratio(m['paired']['direct']['rps_cpu'])} |"
            )
    return "\n".join(lines)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024 // 1024
    nginx_v = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    return f"{os.cpu_count()} x {cpu}, {mem} GiB, Linux {platform.release()}, {nginx_v}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one short round (about 5 minutes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    ap.add_argument("--rate", type=int, default=1000, help="fixed request rate of the p99 runs")
    ap.add_argument("--ws", type=int, default=2000, help="idle WebSockets for the RSS figure")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite BENCHMARKS.md")
    ap.add_argument("--profile", default="", help="TOOL:TARGET, e.g. wrk-h1:static: perf of deskgate only")
    ap.add_argument("--hold", type=int, default=0, help="start everything, wait this many seconds, stop (for perf/strace by hand)")
    ap.add_argument("--only", default="micro,ws,agents", help="which parts: micro,ws,agents")
    ap.add_argument("--agents", type=int, default=1500, help="agents of the storm and steady run")
    ap.add_argument("--storm-window", type=int, default=60, help="seconds the logins are spread over")
    ap.add_argument("--steady", type=int, default=30, help="seconds of steady state after the storm")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
        args.agents, args.storm_window, args.steady, args.ws = 300, 10, 15, 500
    cmdline = " ".join(["bench/run", *sys.argv[1:]])
    # a SIGTERM (a timeout, a CI job cancelled) stops what we started, as Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    run = Run(args)
    started = time.time()
    try:
        run.setup()
        if args.profile:
            run.profile(args.profile)
            return
        if args.hold:
            info = {k: (v.port, v.pid) for k, v in run.peers.items()}
            log(f"holding for {args.hold}s: (port, pid) {info}; files in {run.dir}")
            time.sleep(args.hold)
            return
        for rnd in range(1, args.rounds + 1):
            if "micro" in args.only:
                run.micro_round(rnd)
            # only on fresh processes: after the agent runs an allocator
            # reuses what it kept, and the RSS delta says nothing
            if "ws" in args.only and args.ws and rnd == 1:
                run.idle_ws(rnd)
            if "agents" in args.only and args.agents:
                run.agents_run(rnd)
    finally:
        run.cleanup()
    micro = [r for r in run.results if r["scenario"] != "idle WebSocket RSS" and not r["scenario"].startswith("agents")]
    text = render(table(micro), args, cmdline) if micro else ""
    agents = render_agents(run.results)
    print()
    print(text)
    print()
    print(agents)
    took = time.time() - started
    log(f"done in {took / 60:.1f} min; work files in {run.dir}")
    with open(os.path.join(run.dir, "results.json"), "w") as f:
        json.dump(run.results, f, indent=1)
    if not args.no_write:
        write_report(args, cmdline, text, agents, took, run.results)


def write_report(args, cmdline, micro, agents, took, results):
    """The measured part of BENCHMARKS.md, between its markers; the
    hand-written analysis around them is kept."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    old = open(path).read() if os.path.exists(path) else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in old or end not in old:
        old += f"\n{begin}\n{end}\n"
    rounds = "1 round (--quick)" if args.quick else f"medians of {args.rounds} interleaved rounds"
    body = f"""{begin}
## Last run

- When: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {took / 60:.1f} minutes, {rounds}, {args.duration} s per micro measurement.
- Machine: {machine()}.
- Command: `{cmdline}` (the raw figures of every measurement are in the run's `results.json`).
- Every proxy: one worker pinned to CPU 0 (`deskgate run --workers 1`, nginx `worker_processes 1` with `worker_cpu_affinity`); load tools, the upstream nginx and the simulator on CPU 1. The same certificate and TLS settings (1.2 and 1.3 offered, no session resumption) for every peer.

### Micro (requests per proxy CPU-second and p50/p99 at a fixed rate: medians over rounds; "vs" columns: deskgate's ratio to the other peer in the same round, the median over rounds and (in brackets) their range; higher is better for deskgate; for p99 rows the other's p99 over deskgate's)

{micro}

### Idle WebSockets and agents

{agents}
{end}"""
    pre, rest = old.split(begin, 1)
    post = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(pre + body + post)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
