//! A tiny static program for the engine tests' `FROM scratch` images (std only, so `rustc`
//! builds it in seconds): `serve [FILE]` prints a line (and FILE's content, like an app that
//! echoes its secret) and runs until SIGTERM; `args A…` prints its arguments in brackets and
//! runs until SIGTERM; `http V` answers each connection on :8080 with `V`; `check FILE` exits 0
//! when FILE exists; `write FILE TEXT` writes TEXT to FILE and `cat FILE` prints FILE (both exit
//! 1 with the reason when they cannot); `mode FILE` prints its octal mode and uid:gid; `resolve
//! NAME` prints the IPv4 addresses the container's DNS server gives for NAME (sorted,
//! space-separated; `none` when there are none); `ok` exits 0; `fail` prints why and exits 1.

use std::time::Duration;

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn _exit(code: i32) -> !;
}

extern "C" fn on_term(_: i32) {
    // As PID 1 a process gets no default SIGTERM action: exit at once so `stop` is quick.
    // SAFETY: _exit(2) is async-signal-safe, so it may be called from this handler.
    unsafe { _exit(0) }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            // SAFETY: signal(2) installs `on_term`, an extern "C" fn that only calls _exit.
            unsafe { signal(15, on_term as *const () as usize) };
            println!("helper serving");
            if let Some(file) = args.get(2) {
                let content = std::fs::read_to_string(file).unwrap_or_else(|e| format!("unreadable: {e}"));
                println!("read secret: {}", content.trim());
            }
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Some("args") => {
            // Each argument in brackets, so a test sees how the command line was split.
            // SAFETY: signal(2) installs `on_term`, an extern "C" fn that only calls _exit.
            unsafe { signal(15, on_term as *const () as usize) };
            let shown: Vec<String> = args[2..].iter().map(|a| format!("[{a}]")).collect();
            println!("args: {}", shown.join(" "));
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Some("http") => {
            // A stand-in web server: answers every connection on :8080 with its version line.
            // SAFETY: signal(2) installs `on_term`, an extern "C" fn that only calls _exit.
            unsafe { signal(15, on_term as *const () as usize) };
            let version = args.get(2).cloned().unwrap_or_default();
            let listener = std::net::TcpListener::bind("0.0.0.0:8080").expect("bind :8080");
            println!("helper {version} listening");
            for stream in listener.incoming().flatten() {
                use std::io::Write;
                let mut stream = stream;
                let _ = writeln!(stream, "{version}");
            }
        }
        Some("check") => {
            // Healthy when the file exists (the test creates it to open the gate).
            let file = args.get(2).map(String::as_str).unwrap_or("/gate/ready");
            if !std::path::Path::new(file).exists() {
                println!("{file} does not exist yet");
                std::process::exit(1);
            }
        }
        Some("write") => {
            let (file, text) = (&args[2], args.get(3).cloned().unwrap_or_default());
            if let Err(e) = std::fs::write(file, text) {
                println!("cannot write {file}: {e}");
                std::process::exit(1);
            }
        }
        Some("cat") => match std::fs::read_to_string(&args[2]) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                println!("cannot read {}: {e}", args[2]);
                std::process::exit(1);
            }
        },
        Some("resolve") => {
            // A raw DNS query: a static binary in FROM scratch has no NSS modules for
            // getaddrinfo, and the test wants every address, not the first.
            let name = args.get(2).map(String::as_str).unwrap_or("localhost");
            match resolve(name) {
                Ok(mut addresses) if !addresses.is_empty() => {
                    addresses.sort();
                    println!("{}", addresses.join(" "));
                }
                Ok(_) => println!("none"),
                Err(e) => {
                    eprintln!("resolving {name}: {e}");
                    std::process::exit(1);
                }
            }
        }
        Some("mode") => {
            use std::os::unix::fs::MetadataExt;
            match std::fs::metadata(&args[2]) {
                Ok(m) => println!("{:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid()),
                Err(e) => {
                    println!("cannot stat {}: {e}", args[2]);
                    std::process::exit(1);
                }
            }
        }
        Some("ok") => {}
        Some("fail") => {
            println!("database not reachable");
            std::process::exit(1);
        }
        other => {
            eprintln!("unknown command {other:?}");
            std::process::exit(2);
        }
    }
}

/// The A records the first `nameserver` of /etc/resolv.conf (Docker's 127.0.0.11) gives for
/// `name`.
fn resolve(name: &str) -> std::io::Result<Vec<String>> {
    let conf = std::fs::read_to_string("/etc/resolv.conf")?;
    let server = conf
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap_or("127.0.0.11")
        .trim()
        .to_owned();
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(3)))?;
    socket.send_to(&query, (server.as_str(), 53))?;
    let mut buf = [0u8; 1500];
    let len = socket.recv(&mut buf)?;
    let answer = &buf[..len];
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "short DNS answer");
    let count = u16::from_be_bytes([answer[6], answer[7]]) as usize;
    // Skips a (possibly compressed) name.
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *answer.get(at)? as usize;
            if len == 0 {
                return Some(at + 1);
            }
            if len & 0xC0 == 0xC0 {
                return Some(at + 2);
            }
            at += 1 + len;
        }
    };
    let mut at = skip_name(12).ok_or_else(bad)? + 4;
    let mut out = Vec::new();
    for _ in 0..count {
        at = skip_name(at).ok_or_else(bad)?;
        let field = answer.get(at..at + 10).ok_or_else(bad)?;
        let kind = u16::from_be_bytes([field[0], field[1]]);
        let length = u16::from_be_bytes([field[8], field[9]]) as usize;
        let data = answer.get(at + 10..at + 10 + length).ok_or_else(bad)?;
        if kind == 1 && length == 4 {
            out.push(format!("{}.{}.{}.{}", data[0], data[1], data[2], data[3]));
        }
        at += 10 + length;
    }
    Ok(out)
}
