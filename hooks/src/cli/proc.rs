//! `hooks proc` and `hooks wait-for`, the helpers hook scripts call: arguments and printing;
//! the work is in `hooks_runtime::detached` and `hooks_runtime::health`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use hooks_runtime::detached::{self, StartOptions, StopOptions, StopOutcome};
use hooks_runtime::health::{self, Target, WaitOptions};

/// `hooks proc start|stop`.
#[derive(Subcommand)]
pub enum ProcCommand {
    /// Start CMD detached (own session, stdin from /dev/null, output appended to --log) and
    /// write its pid to --pidfile. Refuses when the pidfile names a running process; fails
    /// (exit 1, with the end of its log) when CMD exits within --settle seconds.
    ///
    /// Example: hooks proc start --pidfile run/app.pid --log run/app.log -- bin/app --port 8080
    Start {
        #[arg(long)]
        pidfile: PathBuf,
        /// Output file (default: PIDFILE.log).
        #[arg(long)]
        log: Option<PathBuf>,
        /// Seconds the process must keep running before it counts as started; one that exits
        /// sooner fails the start (exit 1) with the end of its log. 0 returns at once.
        #[arg(long, default_value_t = 0.5)]
        settle: f64,
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Send SIGTERM (or --signal) to the process in --pidfile, wait up to --timeout seconds,
    /// then SIGKILL. Nothing running is not an error.
    ///
    /// Example: hooks proc stop --pidfile run/app.pid --timeout 30
    Stop {
        #[arg(long)]
        pidfile: PathBuf,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Signal name or number, e.g. TERM, INT, QUIT.
        #[arg(long, default_value = "TERM")]
        signal: String,
    },
}

/// `hooks proc start|stop`: exit 0 done, 1 failed.
pub fn proc(command: ProcCommand) -> i32 {
    match command {
        ProcCommand::Start {
            pidfile,
            log,
            settle,
            command,
        } => {
            let mut options = StartOptions::new(&pidfile, command);
            options.log_file = log;
            match detached::start_settled(&options, Duration::from_secs_f64(settle.max(0.0))) {
                Ok(pid) => {
                    println!("started pid {pid} (pidfile {})", pidfile.display());
                    0
                }
                Err(error) => {
                    eprintln!("hooks proc start: {error}");
                    1
                }
            }
        }
        ProcCommand::Stop {
            pidfile,
            timeout,
            signal,
        } => {
            let mut options = StopOptions::new(&pidfile, Duration::from_secs(timeout));
            match detached::parse_signal(&signal) {
                Ok(signal) => options.signal = signal,
                Err(error) => {
                    eprintln!("hooks proc stop: {error}");
                    return 1;
                }
            }
            match detached::stop(&options) {
                Ok(StopOutcome::Exited { pid, waited }) => {
                    println!("pid {pid} exited after {:.2} s", waited.as_secs_f64());
                    0
                }
                Ok(StopOutcome::Killed { pid, waited }) => {
                    println!(
                        "pid {pid} did not exit within {timeout} s; killed after {:.2} s",
                        waited.as_secs_f64()
                    );
                    0
                }
                Ok(StopOutcome::NotRunning { stale_pid }) => {
                    match stale_pid {
                        Some(pid) => {
                            println!("not running (stale pid {pid} in {})", pidfile.display())
                        }
                        None => println!("not running ({} absent)", pidfile.display()),
                    }
                    0
                }
                Err(error) => {
                    eprintln!("hooks proc stop: {error}");
                    1
                }
            }
        }
    }
}

/// `hooks wait-for TARGET`: exit 0 answered, 1 deadline passed, 3 bad target.
pub fn wait_for(target: &str, timeout: u64, interval: f64) -> i32 {
    let target = match Target::parse(target) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("hooks wait-for: {error}");
            return 3;
        }
    };
    let mut options = WaitOptions::new(target, Duration::from_secs(timeout));
    options.interval = Duration::from_secs_f64(interval.max(0.01));
    match health::wait_for(&options) {
        Ok(success) => {
            println!(
                "{} answered after {} attempt(s) in {:.2} s: {}",
                options.target,
                success.attempts,
                success.elapsed.as_secs_f64(),
                success.answer
            );
            0
        }
        Err(error) => {
            eprintln!("hooks wait-for: {error}");
            1
        }
    }
}
