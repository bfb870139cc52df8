//! `deploy.notify` through the real binary: a local HTTP receiver checks the HMAC-SHA256
//! signature of every event (and answers the first with a 503, so a retry is needed); a
//! receiver that never answers or a closed port delays the deployment by at most
//! `deploy.notify.wait`; a bad URL or a missing key file is exit 3 naming the appspec place.
//! Over https: a throwaway CA (made with the `openssl` CLI) signs a python3 `http.server` +
//! `ssl` receiver's certificate; trusted through `SSL_CERT_FILE` it gets every event signed,
//! and a receiver whose certificate that CA did not sign neither fails nor holds up the
//! deployment, and the log says why its certificate was refused.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;
use hmac::{KeyInit, Mac};

const KEY: &str = "notify-key-never-logged-8d1f";

/// One request the receiver got: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP server: records every request; answers the first with 503, the rest with 200.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/events", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.trim().to_lowercase(), value.trim().to_owned()));
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut all = seen.lock().unwrap();
            let status = if all.is_empty() {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            all.push(Received { headers, body });
            drop(all);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (url, got)
}

fn notify_section(urls: &[&str], wait: u64) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "  notify:\n    urls: [{}]\n    key_file: notify.key\n    wait: {wait}\n",
        urls.join(", ")
    )
}

fn write_key(env: &Env) {
    let shared = env.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("notify.key"), format!("{KEY}\n")).unwrap();
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2_11::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex_of(&mac.finalize().into_bytes()))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The events received so far, in order, after checking each one's signature; the first
/// (answered 503) is delivered again, so it is counted once.
fn events(got: &Arc<Mutex<Vec<Received>>>) -> Vec<serde_json::Value> {
    let all = got.lock().unwrap().clone();
    let mut out: Vec<serde_json::Value> = Vec::new();
    for r in &all {
        assert_eq!(
            r.header("x-hooks-signature"),
            Some(expected_signature(&r.body).as_str()),
            "bad signature on {}",
            String::from_utf8_lossy(&r.body)
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.header("x-hooks-event"), body["event"].as_str());
        assert_eq!(r.header("content-type"), Some("application/json"));
        if out.last() != Some(&body) {
            out.push(body);
        }
    }
    out
}

#[test]
fn every_event_arrives_signed_and_a_503_is_retried() {
    let env = Env::new();
    write_key(&env);
    let (url, got) = receiver();
    let v1 = env
        .bundle("v1")
        .traced(&["ApplicationStart"], "v1")
        .deploy_section(&notify_section(&[&url], 5))
        .build();
    let run = env.deploy(&v1, &[]);
    run.expect(0);
    let first = env.last_id();
    let names = |list: &[serde_json::Value]| -> Vec<String> {
        list.iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = events(&got);
    assert_eq!(names(&list), ["started", "succeeded"], "{list:?}");
    assert_eq!(got.lock().unwrap().len(), 3, "the 503 was retried once");
    assert_eq!(list[1]["deployment_id"], first.as_str());
    assert_eq!(list[1]["kind"], "deploy");
    assert_eq!(list[1]["exit_code"], 0);

    // A failing ApplicationStart: failed, then rolled_back to v1.
    let v2 = env
        .bundle("v2")
        .script("ApplicationStart", "fail.sh", "echo broken >&2; exit 1")
        .deploy_section(&notify_section(&[&url], 5))
        .build();
    env.deploy(&v2, &[]).expect(1);
    let list = events(&got);
    assert_eq!(
        names(&list[2..]),
        ["started", "failed", "rolled_back"],
        "{list:?}"
    );
    assert_eq!(list[4]["previous"], first.as_str());
    assert!(
        list[3]["error"]
            .as_str()
            .unwrap()
            .contains("ApplicationStart")
    );

    let logs: String = [first, env.last_id()]
        .iter()
        .map(|id| env.log(id))
        .collect();
    assert!(logs.contains("delivered to http://127.0.0.1:"), "{logs}");
    assert!(!logs.contains(KEY), "the key is in a log");
    assert!(
        !logs.contains("/hooks/events"),
        "only scheme://host:port is logged"
    );
    assert!(!run.stdout().contains(KEY) && !run.stderr().contains(KEY));
}

#[test]
fn an_unreachable_receiver_neither_fails_nor_holds_up_the_deployment_past_the_wait() {
    let env = Env::new();
    write_key(&env);
    // One that accepts and never answers, one that refuses connections.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let bundle = env
        .bundle("v1")
        .traced(&["ApplicationStart"], "v1")
        .deploy_section(&notify_section(&[&silent_url, &closed_url], 1))
        .build();
    let started = Instant::now();
    env.deploy(&bundle, &[]).expect(0);
    let took = started.elapsed();
    // Without the bound, the silent receiver alone holds each attempt for 5 s, 5 attempts.
    assert!(
        took < Duration::from_secs(10),
        "the deployment waited {took:?} for notifications (bound: wait 1 s)"
    );
    let log = env.log(&env.last_id());
    assert!(log.contains("still undelivered after waiting 1s"), "{log}");
    assert_eq!(env.current(), Some(env.last_id()));
    drop(silent);
}

#[test]
fn a_bad_url_or_a_missing_key_file_is_refused_with_its_appspec_place() {
    let env = Env::new();
    let bad = env
        .bundle("bad-url")
        .deploy_section(&notify_section(&["not a url"], 5))
        .build();
    let run = env.deploy(&bad, &[]);
    run.expect(3);
    let said = run.stderr();
    assert!(said.contains("appspec.yml:"), "{said}");
    assert!(
        said.contains(": deploy.notify.urls[0]: 'not a url' is not a URL"),
        "{said}"
    );

    // No key file in shared/: refused before anything changed.
    let (url, _) = receiver();
    let keyless = env
        .bundle("no-key")
        .deploy_section(&notify_section(&[&url], 5))
        .build();
    let run = env.deploy(&keyless, &[]);
    run.expect(3);
    let said = run.stderr();
    let place = said
        .split(": deploy.notify.key_file: cannot read the signing key")
        .next()
        .unwrap();
    let mut parts = place.rsplit(':');
    let (column, line) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(
        column.parse::<u32>().is_ok()
            && line.parse::<u32>().is_ok()
            && place.contains("appspec.yml"),
        "expected appspec.yml:LINE:COLUMN before the key: {said}"
    );
    assert_eq!(env.current(), None);
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI runs (needed to make the test's CA)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes CA `name` (`<name>-ca.pem`) and a certificate for 127.0.0.1 / localhost signed by it
/// (`<name>-server.pem`, key `<name>-server.key`) in `dir`.
fn make_ca_and_server_cert(dir: &std::path::Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca_key, ca) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    let subject = format!("/CN=hooks test CA {name}");
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    let (key, csr, cert) = (
        format!("{name}-server.key"),
        format!("{name}-server.csr"),
        format!("{name}-server.pem"),
    );
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &args);
    let ext = format!("{name}-server.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// The https receiver: python3's http.server behind ssl, answering 200 and printing one JSON
/// line per request (headers, hex body); it writes its port to a file once listening.
const HTTPS_RECEIVER: &str = r#"
import http.server, json, os, ssl, sys
cert, key, port_file = sys.argv[1:4]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = [[k.lower(), v] for k, v in self.headers.items()]
        print(json.dumps({"headers": headers, "body": body.hex()}), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

/// A running https receiver; killed when dropped.
struct HttpsReceiver {
    child: std::process::Child,
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Drop for HttpsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the receiver with `<name>-server.pem` from `dir`.
fn https_receiver(dir: &std::path::Path, name: &str) -> HttpsReceiver {
    let script = dir.join("receiver.py");
    std::fs::write(&script, HTTPS_RECEIVER).unwrap();
    let port_file = dir.join(format!("{name}.port"));
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.join(format!("{name}-server.pem")))
        .arg(dir.join(format!("{name}-server.key")))
        .arg(&port_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (the test's https receiver)");
    let stdout = child.stdout.take().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let headers = v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        h[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let hex = v["body"].as_str().unwrap();
            let body = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            seen.lock().unwrap().push(Received { headers, body });
        }
    });
    let mut receiver = HttpsReceiver {
        child,
        url: String::new(),
        got,
    };
    common::wait_until(
        Duration::from_secs(20),
        "the https receiver listens",
        || port_file.exists(),
    );
    let port = std::fs::read_to_string(&port_file).unwrap();
    receiver.url = format!("https://127.0.0.1:{}/hooks/events?token=t0k", port.trim());
    receiver
}

#[test]
fn over_https_every_event_arrives_signed_when_the_ca_is_trusted() {
    let env = Env::new();
    write_key(&env);
    let certs = tempfile::tempdir().unwrap();
    make_ca_and_server_cert(certs.path(), "trusted");
    let receiver = https_receiver(certs.path(), "trusted");
    let ca = certs.path().join("trusted-ca.pem");
    let ca = ca.to_str().unwrap();
    let section = notify_section(&[&receiver.url], 5);

    let v1 = env
        .bundle("v1")
        .traced(&["ApplicationStart"], "v1")
        .deploy_section(&section)
        .build();
    let run = env.deploy_with_env(&v1, &[("SSL_CERT_FILE", ca)]);
    run.expect(0);
    let first = env.last_id();
    let v2 = env
        .bundle("v2")
        .script("ApplicationStart", "fail.sh", "echo broken >&2; exit 1")
        .deploy_section(&section)
        .build();
    env.deploy_with_env(&v2, &[("SSL_CERT_FILE", ca)]).expect(1);

    // Each deployment waited for its deliveries; the receiver's output may trail a little.
    common::wait_until(Duration::from_secs(10), "five events received", || {
        receiver.got.lock().unwrap().len() >= 5
    });
    let list = events(&receiver.got);
    let names: Vec<&str> = list.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["started", "succeeded", "started", "failed", "rolled_back"],
        "{list:?}"
    );
    assert_eq!(list[1]["deployment_id"], first.as_str());
    assert_eq!(list[4]["previous"], first.as_str());

    let logs: String = [first, env.last_id()]
        .iter()
        .map(|id| env.log(id))
        .collect();
    assert!(logs.contains("delivered to https://127.0.0.1:"), "{logs}");
    assert!(
        !logs.contains("attempt 1 to https"),
        "no attempt should fail: {logs}"
    );
    assert!(!logs.contains(KEY), "the key is in a log");
    assert!(
        !logs.contains("/hooks/events") && !logs.contains("t0k"),
        "{logs}"
    );
    assert!(!run.stdout().contains(KEY) && !run.stderr().contains(KEY));
}

#[test]
fn over_https_an_untrusted_certificate_is_logged_and_never_fails_the_deployment() {
    let env = Env::new();
    write_key(&env);
    let certs = tempfile::tempdir().unwrap();
    make_ca_and_server_cert(certs.path(), "trusted");
    // Its certificate comes from a CA the deployment is not told about.
    make_ca_and_server_cert(certs.path(), "stranger");
    let receiver = https_receiver(certs.path(), "stranger");
    let ca = certs.path().join("trusted-ca.pem");
    let bundle = env
        .bundle("v1")
        .traced(&["ApplicationStart"], "v1")
        .deploy_section(&notify_section(&[&receiver.url], 1))
        .build();
    let started = Instant::now();
    env.deploy_with_env(&bundle, &[("SSL_CERT_FILE", ca.to_str().unwrap())])
        .expect(0);
    let took = started.elapsed();
    // Retrying both events in full would take 2 × 3.75 s of backoff; wait is 1 s.
    assert!(
        took < Duration::from_secs(10),
        "the deployment waited {took:?} for notifications (bound: wait 1 s)"
    );
    assert_eq!(env.current(), Some(env.last_id()));
    let log = env.log(&env.last_id());
    assert!(
        log.contains("started attempt 1 to https://127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("invalid peer certificate: UnknownIssuer"),
        "the log should name the certificate problem: {log}"
    );
    assert!(log.contains("still undelivered after waiting 1s"), "{log}");
    assert!(
        receiver.got.lock().unwrap().is_empty(),
        "nothing got through"
    );
}
