//! Fake `ngrok` and `cloudflared` executables (small Python scripts written by the tests) that
//! behave like the real agents as their documentation describes them:
//! - ngrok (`ngrok http PORT --log stdout --log-format json`) logs JSON lines on stdout and serves
//!   its local agent API, `GET /api/tunnels` -> `{"tunnels": [{"name", "uri", "public_url",
//!   "proto": "https", "config": {"addr", "inspect"}, "metrics"}], "uri": "/api/tunnels"}`; a
//!   refused authtoken ends it with `ERR_NGROK_105`.
//! - cloudflared (`cloudflared tunnel --no-autoupdate --url http://127.0.0.1:PORT`) logs on
//!   stderr and prints its quick tunnel's `https://<name>.trycloudflare.com` in a box.
//!
//! Each start gets a new URL (`…-<start number>…`), as a free tunnel does after a restart. The
//! control folder records starts, arguments, the pid and whether NGROK_AUTHTOKEN was received;
//! creating `refuse_token` in it makes the next start refuse its token. A crash is a SIGKILL of
//! the recorded pid.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

pub struct FakeAgent {
    pub program: PathBuf,
    pub control: PathBuf,
}

const NGROK: &str = r#"#!/usr/bin/env python3
import datetime, http.server, json, os, signal, sys, time
CONTROL = sys.argv[0] + ".d"
API_PORT = int(open(os.path.join(CONTROL, "api_port")).read())

def bump():
    path = os.path.join(CONTROL, "starts")
    n = int(open(path).read()) + 1 if os.path.exists(path) else 1
    open(path, "w").write(str(n))
    return n

n = bump()
open(os.path.join(CONTROL, "pid"), "w").write(str(os.getpid()))
open(os.path.join(CONTROL, "args-%d" % n), "w").write(json.dumps(sys.argv[1:]))
open(os.path.join(CONTROL, "token-%d" % n), "w").write(os.environ.get("NGROK_AUTHTOKEN", ""))
leaked = [k for k in os.environ if k.startswith("FRAMEIO_") or k.startswith("RUSHES_")]
open(os.path.join(CONTROL, "leaked-%d" % n), "w").write(json.dumps(leaked))

def log(lvl, msg, **kw):
    t = datetime.datetime.now(datetime.timezone.utc).isoformat()
    print(json.dumps(dict(t=t, lvl=lvl, msg=msg, **kw)), flush=True)

if os.path.exists(os.path.join(CONTROL, "refuse_token")):
    log("eror", "session closing", obj="tunnels.session",
        err="authentication failed: The authtoken you specified does not look like a proper ngrok tunnel authtoken.\nYour authtoken: %s\n\nERR_NGROK_105" % os.environ.get("NGROK_AUTHTOKEN", ""))
    sys.exit(1)

port = sys.argv[2]
url = "https://f%d-4a7c-9e21.ngrok-free.app" % n
started = time.time()
body = json.dumps({"tunnels": [{"name": "command_line", "ID": "3a8b0d6c%d" % n,
    "uri": "/api/tunnels/command_line", "public_url": url, "proto": "https",
    "config": {"addr": "http://localhost:%s" % port, "inspect": True},
    "metrics": {"conns": {"count": 0}, "http": {"count": 0}}}], "uri": "/api/tunnels"}).encode()
empty = json.dumps({"tunnels": [], "uri": "/api/tunnels"}).encode()

class Api(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.rstrip("/") != "/api/tunnels":
            self.send_response(404); self.end_headers(); return
        # The session takes a moment to come up, as the real agent's does.
        answer = body if time.time() - started > 0.3 else empty
        moved = os.path.join(CONTROL, "moved_url")
        if answer is body and os.path.exists(moved):
            # The endpoint was moved without a restart (a reconnect to another edge).
            answer = body.replace(url.encode(), open(moved).read().strip().encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer.allow_reuse_address = True
server = None
for _ in range(100):
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", API_PORT), Api)
        break
    except OSError:
        time.sleep(0.05)
if server is None:
    log("crit", "failed to start web service", err="address in use")
    sys.exit(1)
signal.signal(signal.SIGTERM, lambda *a: (log("info", "received stop request", obj="app"), os._exit(0)))
log("info", "no configuration paths supplied", obj="config")
log("info", "starting web service", obj="web", addr="127.0.0.1:%d" % API_PORT)
log("info", "client session established", obj="tunnels.session")
log("info", "started tunnel", obj="tunnels", name="command_line", addr="http://localhost:%s" % port, url=url)
server.serve_forever()
"#;

const CLOUDFLARED: &str = r#"#!/usr/bin/env python3
import datetime, json, os, signal, sys, time
CONTROL = sys.argv[0] + ".d"
path = os.path.join(CONTROL, "starts")
n = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(n))
open(os.path.join(CONTROL, "pid"), "w").write(str(os.getpid()))
open(os.path.join(CONTROL, "args-%d" % n), "w").write(json.dumps(sys.argv[1:]))
open(os.path.join(CONTROL, "token-%d" % n), "w").write(os.environ.get("TUNNEL_TOKEN", ""))

def log(level, text):
    t = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sys.stderr.write("%s %s %s\n" % (t, level, text))
    sys.stderr.flush()

signal.signal(signal.SIGTERM, lambda *a: (log("INF", "Initiating graceful shutdown due to signal terminated ..."), os._exit(0)))
if "run" in sys.argv[1:]:
    # A named tunnel: its hostname is configured at Cloudflare, nothing to print.
    log("INF", "Starting tunnel tunnelID=7f0a4c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b")
    log("INF", "Registered tunnel connection connIndex=0 event=0 ip=198.41.200.13 location=cdg01 protocol=quic")
    while True:
        signal.pause()
url = "https://gentle-river-delta-%d.trycloudflare.com" % n
log("INF", "Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick way to experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee, are subject to the Cloudflare Online Services Terms of Use (https://www.cloudflare.com/website-terms/), and Cloudflare reserves the right to investigate your use of Tunnels for violations of such terms. If you intend to use Tunnels in production you should use a pre-created named tunnel by following: https://developers.cloudflare.com/cloudflare-one/connections/connect-apps")
log("INF", "Requesting new quick Tunnel on trycloudflare.com...")
time.sleep(0.2)
box = "+" + "-" * 92 + "+"
log("INF", box)
log("INF", "|  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |")
log("INF", "|  %-88s|" % url)
log("INF", box)
log("INF", "Cannot determine default configuration path. No file [config.yml config.yaml] in [~/.cloudflared ~/.cloudflare-warp ~/cloudflare-warp /etc/cloudflared /usr/local/etc/cloudflared]")
log("INF", "Version 2024.11.0")
log("INF", "Registered tunnel connection connIndex=0 connection=6e2a1c1b-1f0c-4d59-9d3b-0a1f2d3e4f50 event=0 ip=198.41.200.13 location=cdg01 protocol=quic")
while True:
    signal.pause()
"#;

fn write(dir: &Path, name: &str, text: &str) -> FakeAgent {
    let program = dir.join(name);
    std::fs::write(&program, text).expect("write fake agent");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let control = dir.join(format!("{name}.d"));
    std::fs::create_dir_all(&control).expect("control dir");
    FakeAgent { program, control }
}

impl FakeAgent {
    /// A fake ngrok whose agent API listens on 127.0.0.1:`api_port`.
    pub fn ngrok(dir: &Path, api_port: u16) -> Self {
        let agent = write(dir, "ngrok", NGROK);
        std::fs::write(agent.control.join("api_port"), api_port.to_string()).expect("api port");
        agent
    }

    pub fn cloudflared(dir: &Path) -> Self {
        write(dir, "cloudflared", CLOUDFLARED)
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.control.join(name)).ok()
    }

    pub fn starts(&self) -> u32 {
        self.read("starts")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn pid(&self) -> Option<i32> {
        self.read("pid").and_then(|s| s.trim().parse().ok())
    }

    pub fn args(&self, start: u32) -> Vec<String> {
        self.read(&format!("args-{start}"))
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    pub fn token(&self, start: u32) -> Option<String> {
        self.read(&format!("token-{start}"))
    }

    pub fn leaked(&self, start: u32) -> Vec<String> {
        self.read(&format!("leaked-{start}"))
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    /// The running agent's API answers `url` from now on (no restart).
    pub fn move_url(&self, url: &str) {
        std::fs::write(self.control.join("moved_url"), url).expect("moved url");
    }

    pub fn refuse_token(&self) {
        std::fs::write(self.control.join("refuse_token"), "").expect("refuse");
    }

    /// The URL the n-th start serves.
    pub fn ngrok_url(start: u32) -> String {
        format!("https://f{start}-4a7c-9e21.ngrok-free.app")
    }

    pub fn cloudflared_url(start: u32) -> String {
        format!("https://gentle-river-delta-{start}.trycloudflare.com")
    }

    /// Crashes the running agent (SIGKILL).
    pub fn crash(&self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A free port for a fake agent's API, below the ephemeral range (32768+), so that neither a
/// `127.0.0.1:0` listener nor an outgoing connection of a parallel test can take it meanwhile.
pub fn agent_api_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 4000) as u16;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 24000 + (seed + n * 7) % 8000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether process `pid` still runs (a zombie does not count).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}
