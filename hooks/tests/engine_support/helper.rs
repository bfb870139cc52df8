//! A tiny static program for the engine tests' `FROM scratch` images (std only, so `rustc`
//! builds it in seconds): `serve [FILE]` prints a line (and FILE's content, like an app that
//! echoes its secret) and runs until SIGTERM; `args A…` prints its arguments in brackets and
//! runs until SIGTERM; `http V` answers each connection on :8080 with `V`; `check FILE` exits 0
//! when FILE exists; `write FILE TEXT` writes TEXT to FILE and `cat FILE` prints FILE (both exit
//! 1 with the reason when they cannot), `mode FILE` prints its octal mode and uid:gid; `ok` exits 0; `fail` prints why and exits 1.

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
